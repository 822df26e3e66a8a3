package pricing_test

import (
	"encoding/json"
	"fmt"

	"github.com/creditledger/creditledger/pricing"
	"github.com/shopspring/decimal"
)

// Tokens priced 3.00 per million for the first million and 2.50 per million
// above: each event is debited the marginal price of its tokens, and the
// debits add up to the price of the period's total.
func ExamplePrice_Marginal() {
	var p pricing.Price
	err := json.Unmarshal([]byte(`{"model": "graduated", "tiers": [
		{"up_to": "1000000", "unit_price": "0.000003"},
		{"up_to": null, "unit_price": "0.0000025"}]}`), &p)
	if err != nil {
		fmt.Println(err)
		return
	}
	var q, total decimal.Decimal
	for _, tokens := range []int64{800_000, 400_000, 300_000} {
		next := q.Add(decimal.NewFromInt(tokens))
		debit := p.Marginal(q, next)
		fmt.Printf("%d tokens: %s\n", tokens, debit)
		total = total.Add(debit)
		q = next
	}
	fmt.Printf("debited %s; Amount(%s) = %s\n", total, q, p.Amount(q))
	// Output:
	// 800000 tokens: 2.4
	// 400000 tokens: 1.1
	// 300000 tokens: 0.75
	// debited 4.25; Amount(1500000) = 4.25
}

// A volume price reprices the whole quantity when the total crosses into a
// cheaper tier, so the event that crosses is credited back.
func ExamplePrice_Marginal_volume() {
	tierOne := decimal.NewFromInt(1000)
	p := pricing.Price{Model: pricing.Volume, Tiers: []pricing.Tier{
		{UpTo: &tierOne, UnitPrice: decimal.RequireFromString("0.01")},
		{UnitPrice: decimal.RequireFromString("0.008")},
	}}
	fmt.Println(p.Marginal(decimal.NewFromInt(999), decimal.NewFromInt(1001)))
	// Output: -1.982
}

func ExampleSelect() {
	prices := []pricing.Price{
		{Model: pricing.PerUnit, UnitPrice: decimal.RequireFromString("0.000001")},
		{Model: pricing.PerUnit, UnitPrice: decimal.RequireFromString("0.0000025"),
			Dimensions: map[string]string{"model": "gpt-4o"}},
		{Model: pricing.PerUnit, UnitPrice: decimal.RequireFromString("0.00001"),
			Dimensions: map[string]string{"model": "gpt-4o", "token_type": "output"}},
	}
	for _, dims := range []map[string]string{
		{"model": "gpt-4o", "token_type": "output"},
		{"model": "gpt-4o", "token_type": "input"},
		{"model": "o3", "token_type": "input"},
	} {
		p, _ := pricing.Select(prices, dims)
		fmt.Println(dims["model"], dims["token_type"], p.UnitPrice)
	}
	// Output:
	// gpt-4o output 0.00001
	// gpt-4o input 0.0000025
	// o3 input 0.000001
}
