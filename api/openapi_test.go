package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/creditledger/creditledger/api"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/ledger"
)

// The OpenAPI document is what clients build against, so these tests hold it
// to the code. TestOpenAPIRoutes compares its operations with the routes the
// app serves and the routes the package's source declares, scopes included;
// TestOpenAPIResponses checks that real answers match its schemas.

const openAPIFile = "openapi.json"

// oaOperation is the part of an OpenAPI operation these tests read.
type oaOperation struct {
	OperationID string                 `json:"operationId"`
	Security    *[]map[string][]string `json:"security"` // nil: the document's default
	Scopes      *[]string              `json:"x-scopes"`
	Parameters  []any                  `json:"parameters"`
	Responses   map[string]any         `json:"responses"`
}

// openAPI is the document, both as a tree (for $ref and schemas) and as its
// operations, keyed "METHOD /path".
type openAPI struct {
	tree map[string]any
	ops  map[string]oaOperation
}

var oaMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	b, err := os.ReadFile(openAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := &openAPI{ops: map[string]oaOperation{}}
	if err := json.Unmarshal(b, &doc.tree); err != nil {
		t.Fatalf("%s is not JSON: %v", openAPIFile, err)
	}
	var shape struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &shape); err != nil {
		t.Fatalf("%s: paths: %v", openAPIFile, err)
	}
	for path, item := range shape.Paths {
		for _, m := range oaMethods {
			raw, ok := item[m]
			if !ok {
				continue
			}
			var op oaOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s: %s %s: %v", openAPIFile, strings.ToUpper(m), path, err)
			}
			doc.ops[strings.ToUpper(m)+" "+path] = op
		}
	}
	return doc
}

// resolve follows v's $ref, if it has one, within the document.
func (d *openAPI) resolve(v any) any {
	for range 32 { // a cycle of $refs is a broken document, not a hang
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return v
		}
		v = d.pointer(ref)
	}
	return nil
}

// pointer is the value at a local reference ("#/components/schemas/X"), or
// nil.
func (d *openAPI) pointer(ref string) any {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var v any = d.tree
	for tok := range strings.SplitSeq(rest, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		if v, ok = m[tok]; !ok {
			return nil
		}
	}
	return v
}

// idempotencyParam reports whether op takes the Idempotency-Key header.
func (d *openAPI) idempotencyParam(op oaOperation) bool {
	for _, p := range op.Parameters {
		m, _ := d.resolve(p).(map[string]any)
		if m["in"] == "header" && m["name"] == api.HeaderIdempotencyKey {
			return true
		}
	}
	return false
}

// fiberParam matches a Fiber path parameter (":id", optional "?" included).
var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)\??`)

// openAPIPath translates a Fiber route path to OpenAPI's syntax:
// "/v1/wallets/:id" → "/v1/wallets/{id}".
func openAPIPath(p string) string { return fiberParam.ReplaceAllString(p, "{$1}") }

func TestOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t)

	if v, _ := doc.tree["openapi"].(string); !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v) {
		t.Errorf("openapi = %q, want 3.1.x", v)
	}
	if d := doc.pointer("#/info/description"); d == nil || d == "" {
		t.Error("info.description is missing")
	}
	servers, _ := doc.tree["servers"].([]any)
	if !slices.ContainsFunc(servers, func(s any) bool {
		m, _ := s.(map[string]any)
		return m["url"] == "http://localhost:8080"
	}) {
		t.Errorf("servers %v lack http://localhost:8080", servers)
	}
	if s, _ := doc.pointer("#/components/securitySchemes/bearerAuth").(map[string]any); s["type"] != "http" || s["scheme"] != "bearer" {
		t.Errorf("bearerAuth security scheme = %v, want type http, scheme bearer", s)
	}
	if sec := doc.tree["security"]; !reflect.DeepEqual(sec, []any{map[string]any{"bearerAuth": []any{}}}) {
		t.Errorf("default security = %v, want bearerAuth", sec)
	}

	ids := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(doc.ops)) {
		op := doc.ops[k]
		if op.OperationID == "" {
			t.Errorf("%s: no operationId", k)
		} else if other, dup := ids[op.OperationID]; dup {
			t.Errorf("%s: operationId %q is also %s's", k, op.OperationID, other)
		}
		ids[op.OperationID] = k
		if op.Scopes == nil {
			t.Errorf("%s: no x-scopes", k)
		} else {
			for _, s := range *op.Scopes {
				if !apikey.Scope(s).Valid() {
					t.Errorf("%s: x-scopes names %q, not a scope", k, s)
				}
			}
		}
		ok2xx := false
		for status := range op.Responses {
			ok2xx = ok2xx || strings.HasPrefix(status, "2")
		}
		if !ok2xx {
			t.Errorf("%s: no 2xx response", k)
		}
		if strings.Contains(k, " /v1/") {
			for _, status := range []string{"401", "403", "500"} {
				if op.Responses[status] == nil {
					t.Errorf("%s: response %s is not documented", k, status)
				}
			}
		}
	}

	// Every $ref must lead somewhere.
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok && doc.pointer(ref) == nil {
				t.Errorf("%s: $ref %q leads nowhere", at, ref)
			}
			for k, e := range v {
				walk(at+"/"+k, e)
			}
		case []any:
			for i, e := range v {
				walk(at+"/"+strconv.Itoa(i), e)
			}
		}
	}
	walk("#", doc.tree)

	// The error code enum is the problem package's codes, no more, no less.
	enum, _ := doc.pointer("#/components/schemas/ErrorCode/enum").([]any)
	var documented []string
	for _, c := range enum {
		documented = append(documented, fmt.Sprint(c))
	}
	slices.Sort(documented)
	if codes := problemCodes(t); !slices.Equal(documented, codes) {
		t.Errorf("ErrorCode enum %v, want the codes of package problem %v", documented, codes)
	}

	// The Amount pattern takes what the ledger writes and refuses what it
	// refuses as malformed.
	pattern, _ := doc.pointer("#/components/schemas/Amount/pattern").(string)
	amount, err := regexp.Compile(pattern)
	if err != nil {
		t.Fatalf("Amount pattern %q: %v", pattern, err)
	}
	for _, s := range []string{"0", "12.5", "-3", "0.000000000001", "12345678901234567890123456.123456789012"} {
		out := ledger.MustAmount(s).String()
		if !amount.MatchString(out) {
			t.Errorf("Amount pattern refuses %q, an amount the ledger writes", out)
		}
	}
	for _, s := range []string{"", "1e3", "+1", "01", "1.", ".5", " 1", "1,5", "0x10", "1.0000000000001"} {
		if amount.MatchString(s) {
			t.Errorf("Amount pattern accepts %q", s)
		}
		if _, err := ledger.ParseAmount(s); err == nil {
			t.Errorf("the ledger accepts %q; the test's list of bad amounts is wrong", s)
		}
	}
}

// problemCodes are the Code constants of package problem, read from its
// source so that a code added there must be added to the document too.
func problemCodes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("problem", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if typ, ok := vs.Type.(*ast.Ident); !ok || typ.Name != "Code" {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: a Code constant that is not a string literal", fset.Position(v.Pos()))
					}
					s, _ := strconv.Unquote(lit.Value)
					codes = append(codes, s)
				}
			}
		}
	}
	if len(codes) == 0 {
		t.Fatal("found no Code constants in package problem")
	}
	slices.Sort(codes)
	return codes
}

// declaredRoute is a Route declared in the package's source:
//
//	GET("/wallets/:id", h.wallet).Allow(apikey.Read, apikey.Portal)
type declaredRoute struct {
	pos        string
	scopes     []string // admin included, sorted
	unreadable string   // why the scopes could not be read, if they could not
	idempotent bool     // a handler reads the Idempotency-Key header
}

var routeConstructors = map[string]string{
	"GET": fiber.MethodGet, "POST": fiber.MethodPost, "PUT": fiber.MethodPut,
	"PATCH": fiber.MethodPatch, "DELETE": fiber.MethodDelete,
}

var scopeConstants = map[string]apikey.Scope{"Admin": apikey.Admin, "Ingest": apikey.Ingest, "Read": apikey.Read, "Portal": apikey.Portal}

// declaredRoutes reads every Route declaration in the package's non-test
// source, keyed "METHOD /v1/path" in OpenAPI syntax. Reading the source,
// rather than only the routes a test app mounts, catches a route in a new
// file whose constructor this test has never heard of.
func declaredRoutes(t *testing.T) map[string]*declaredRoute {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var parsed []*ast.File
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
	}

	// Functions that read the Idempotency-Key header, by name. Handlers are
	// matched to them by name alone, without types: good enough while no
	// two handlers share a name.
	// A function reads the key if it calls idempotencyKey or a function
	// that does (handlers share one helper for money-moving POSTs).
	readsKey := map[string]bool{"idempotencyKey": true}
	for changed := true; changed; {
		changed = false
		for _, f := range parsed {
			for _, decl := range f.Decls {
				fd, ok := decl.(*ast.FuncDecl)
				if !ok || fd.Body == nil || readsKey[fd.Name.Name] {
					continue
				}
				for reader := range readsKey {
					if callsFunc(fd.Body, reader) {
						readsKey[fd.Name.Name], changed = true, true
						break
					}
				}
			}
		}
	}

	routes := map[string]*declaredRoute{}
	byCall := map[*ast.CallExpr]*declaredRoute{}
	for _, f := range parsed {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			fn, ok := call.Fun.(*ast.Ident)
			if !ok || routeConstructors[fn.Name] == "" || len(call.Args) == 0 {
				return true
			}
			pos := fset.Position(call.Pos()).String()
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: a route whose path is not a string literal; this test cannot read it", pos)
				return true
			}
			path, _ := strconv.Unquote(lit.Value)
			r := &declaredRoute{pos: pos, scopes: []string{string(apikey.Admin)}}
			for _, h := range call.Args[1:] {
				r.idempotent = r.idempotent || readsKey[funcName(h)]
			}
			key := routeConstructors[fn.Name] + " " + openAPIPath("/v1"+path)
			if _, dup := routes[key]; !dup {
				routes[key] = r
			}
			byCall[call] = r
			return true
		})
	}
	// Scopes: each .Allow(...) adds its arguments to the route it is
	// called on, however many are chained.
	for _, f := range parsed {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Allow" {
				return true
			}
			r := byCall[routeCall(sel.X)]
			if r == nil {
				return true
			}
			for _, arg := range call.Args {
				s, ok := arg.(*ast.SelectorExpr)
				if ok {
					pkg, _ := s.X.(*ast.Ident)
					ok = pkg != nil && pkg.Name == "apikey" && scopeConstants[s.Sel.Name] != ""
				}
				if !ok {
					r.unreadable = fmt.Sprintf("%s: write the scopes as apikey.Read, apikey.Portal, ... for this test to read them",
						fset.Position(arg.Pos()))
					continue
				}
				r.scopes = append(r.scopes, string(scopeConstants[s.Sel.Name]))
			}
			return true
		})
	}
	for _, r := range routes {
		slices.Sort(r.scopes)
		r.scopes = slices.Compact(r.scopes)
	}
	return routes
}

// routeCall is the route constructor call under a chain of .Allow calls.
func routeCall(x ast.Expr) *ast.CallExpr {
	for {
		call, ok := x.(*ast.CallExpr)
		if !ok {
			return nil
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Allow" {
			return call
		}
		x = sel.X
	}
}

// funcName names the function a handler expression refers to: h.debit →
// "debit".
func funcName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	}
	return ""
}

// callsFunc reports whether body calls the function name.
func callsFunc(body ast.Node, name string) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok && funcName(call.Fun) == name {
			found = true
		}
		return !found
	})
	return found
}

// TestOpenAPIRoutes is the drift test: the document's operations are
// exactly the routes the app serves (built as ledgerd builds it) plus those
// the package declares, and each operation's x-scopes are its route's
// scopes. A new route fails it until it is documented.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	declared := declaredRoutes(t)
	e := newWalletEnv(t, nil)

	served := map[string]bool{}
	routes := e.app.GetRoutes(true) // without middleware
	for _, r := range routes {
		// Every GET answers HEAD too; the document leaves that implied.
		if r.Method == fiber.MethodHead && slices.ContainsFunc(routes, func(g fiber.Route) bool {
			return g.Method == fiber.MethodGet && g.Path == r.Path
		}) {
			continue
		}
		served[r.Method+" "+openAPIPath(r.Path)] = true
	}
	implemented := maps.Clone(served)
	for k := range declared {
		implemented[k] = true
	}

	for _, k := range slices.Sorted(maps.Keys(implemented)) {
		if _, ok := doc.ops[k]; ok {
			continue
		}
		method, path, _ := strings.Cut(k, " ")
		where := "served by the app"
		if r := declared[k]; r != nil {
			where = "declared at " + r.pos
		}
		t.Errorf("%s (%s) is not in api/%s: document it as paths[%q].%s", k, where, openAPIFile, path, strings.ToLower(method))
	}
	for _, k := range slices.Sorted(maps.Keys(doc.ops)) {
		if !implemented[k] {
			t.Errorf("api/%s documents %s, which no route serves", openAPIFile, k)
		}
	}

	// The wallet routes as values, to check the source reading above
	// against: a disagreement is a bug in this test.
	for _, r := range api.WalletRoutes(nil) {
		k := r.Method + " " + openAPIPath("/v1"+r.Path)
		want := []string{string(apikey.Admin)}
		for _, s := range r.Scopes {
			want = append(want, string(s))
		}
		slices.Sort(want)
		want = slices.Compact(want)
		switch d := declared[k]; {
		case d == nil:
			t.Errorf("%s: WalletRoutes has it, but the test did not find it in the source", k)
		case d.unreadable == "" && !slices.Equal(d.scopes, want):
			t.Errorf("%s: the test read scopes %v from the source, the route has %v", k, d.scopes, want)
		}
	}

	for _, k := range slices.Sorted(maps.Keys(doc.ops)) {
		op := doc.ops[k]
		method, path, _ := strings.Cut(k, " ")
		var scopes []string
		if op.Scopes != nil {
			scopes = slices.Sorted(slices.Values(*op.Scopes))
		}
		if path != "/v1" && !strings.HasPrefix(path, "/v1/") {
			// Outside /v1 nothing asks for a key.
			if op.Security == nil || len(*op.Security) != 0 || op.Scopes == nil || len(scopes) != 0 {
				t.Errorf("%s takes no key: document it with \"security\": [] and \"x-scopes\": []", k)
			}
			continue
		}
		if op.Security != nil {
			t.Errorf("%s overrides security; /v1 operations take the default bearerAuth", k)
		}
		r := declared[k]
		if r == nil {
			if implemented[k] {
				t.Errorf("%s: no route declaration found to check its x-scopes against", k)
			}
			continue
		}
		if r.unreadable != "" {
			t.Error(r.unreadable)
			continue
		}
		if !slices.Equal(scopes, r.scopes) {
			t.Errorf("%s: x-scopes %v, but the route (%s) allows %v", k, scopes, r.pos, r.scopes)
		}
		if method != fiber.MethodGet {
			if got := doc.idempotencyParam(op); got != r.idempotent {
				t.Errorf("%s: Idempotency-Key parameter documented = %v, but its handler reads the header = %v", k, got, r.idempotent)
			}
		}
		if doc.idempotencyParam(op) {
			for status, resp := range op.Responses {
				m, _ := doc.resolve(resp).(map[string]any)
				h, _ := m["headers"].(map[string]any)
				if strings.HasPrefix(status, "2") && h[api.HeaderIdempotentReplayed] == nil {
					t.Errorf("%s: response %s does not document the %s header", k, status, api.HeaderIdempotentReplayed)
				}
			}
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	want, err := os.ReadFile(openAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil)
	r := e.do(t, "GET", "/openapi.json", "", nil)
	if r.status != 200 {
		t.Fatalf("GET /openapi.json without a key: %d\n%s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != fiber.MIMEApplicationJSON {
		t.Errorf("Content-Type %q, want %q", ct, fiber.MIMEApplicationJSON)
	}
	if !bytes.Equal(r.body, want) {
		t.Error("GET /openapi.json does not serve api/openapi.json as it is")
	}
}

// conformer sends requests and checks each answer against what the
// document says the operation answers with that status.
type conformer struct {
	t    *testing.T
	e    *walletEnv
	doc  *openAPI
	seen map[string]bool // "METHOD /path status" checked
}

// pathParam is a documented path's parameter: "{id}".
var pathParam = regexp.MustCompile(`\{[a-z_]+\}`)

// oaCall is one request: the operation (method and documented path), the id
// to put in the path, and the rest.
type oaCall struct {
	method, path, id, query string
	key                     string // "" means the admin key
	noKey                   bool
	header                  map[string]string
	body                    any
}

// do sends c, requires status, checks the answer against the document and
// returns it decoded (nil if it is not a JSON object).
func (cf *conformer) do(c oaCall, status int) map[string]any {
	t := cf.t
	t.Helper()
	target := pathParam.ReplaceAllLiteralString(c.path, url.PathEscape(c.id)) // {id}, {code}
	if c.query != "" {
		target += "?" + c.query
	}
	key := c.key
	if key == "" && !c.noKey {
		key = cf.e.admin
	}
	r := cf.e.doH(t, c.method, target, key, c.header, c.body)
	if r.status != status {
		t.Fatalf("%s %s: status %d, want %d\n%s", c.method, target, r.status, status, r.body)
	}
	op, ok := cf.doc.ops[c.method+" "+c.path]
	if !ok {
		t.Fatalf("%s %s is not documented", c.method, c.path)
	}
	what := fmt.Sprintf("%s %s → %d", c.method, c.path, r.status)
	cf.seen[what] = true
	resp, _ := cf.doc.resolve(op.Responses[strconv.Itoa(r.status)]).(map[string]any)
	if resp == nil {
		t.Errorf("%s: status %d is not documented for the operation\n%s", what, r.status, r.body)
		return nil
	}
	if r.header.Get(api.HeaderIdempotentReplayed) != "" {
		if h, _ := resp["headers"].(map[string]any); h[api.HeaderIdempotentReplayed] == nil {
			t.Errorf("%s: answered with %s, which the response does not document", what, api.HeaderIdempotentReplayed)
		}
	}
	mediaType, _, _ := strings.Cut(r.header.Get("Content-Type"), ";")
	content, _ := resp["content"].(map[string]any)
	media, ok := content[strings.TrimSpace(mediaType)].(map[string]any)
	if !ok {
		t.Errorf("%s: Content-Type %q is not documented (documented: %v)", what, mediaType, slices.Collect(maps.Keys(content)))
		return nil
	}
	if !strings.HasSuffix(mediaType, "json") {
		return nil
	}
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Errorf("%s: body is not JSON: %v", what, err)
		return nil
	}
	for _, msg := range cf.doc.conform(media["schema"], v, "body") {
		t.Errorf("%s: %s\n%s", what, msg, r.body)
	}
	m, _ := v.(map[string]any)
	return m
}

// conform reports where v departs from schema. It knows the keywords the
// document uses, and is stricter than JSON Schema in one way: a property
// the schema does not declare is reported unless additionalProperties
// allows it, so a field added to a response must be documented.
func (d *openAPI) conform(schema, v any, at string) []string {
	s, ok := schema.(map[string]any)
	if !ok {
		return []string{at + ": no schema"}
	}
	var errs []string
	if ref, ok := s["$ref"].(string); ok {
		target := d.pointer(ref)
		if target == nil {
			return []string{at + ": $ref " + ref + " leads nowhere"}
		}
		errs = append(errs, d.conform(target, v, at)...)
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		branches, ok := s[kw].([]any)
		if !ok {
			continue
		}
		if !slices.ContainsFunc(branches, func(b any) bool { return len(d.conform(b, v, at)) == 0 }) {
			errs = append(errs, fmt.Sprintf("%s: %s matches none of %s", at, shortJSON(v), kw))
		}
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, b := range all {
			errs = append(errs, d.conform(b, v, at)...)
		}
	}
	if typ, ok := s["type"]; ok && !hasType(typ, v) {
		return append(errs, fmt.Sprintf("%s: %s is not of type %v", at, shortJSON(v), typ))
	}
	if c, ok := s["const"]; ok && !reflect.DeepEqual(c, v) {
		errs = append(errs, fmt.Sprintf("%s: %s, want %v", at, shortJSON(v), c))
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return reflect.DeepEqual(e, v) }) {
		errs = append(errs, fmt.Sprintf("%s: %s is not one of %v", at, shortJSON(v), enum))
	}
	switch v := v.(type) {
	case string:
		if p, ok := s["pattern"].(string); ok {
			if re, err := regexp.Compile(p); err != nil {
				errs = append(errs, fmt.Sprintf("%s: pattern %q: %v", at, p, err))
			} else if !re.MatchString(v) {
				errs = append(errs, fmt.Sprintf("%s: %q does not match %s", at, v, p))
			}
		}
		switch s["format"] {
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not RFC 3339", at, v))
			}
		case "uuid":
			if _, err := uuid.Parse(v); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not a UUID", at, v))
			}
		}
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		required, _ := s["required"].([]any)
		for _, r := range required {
			if _, ok := v[fmt.Sprint(r)]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required %q is missing", at, r))
			}
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if ps, ok := props[k]; ok {
				errs = append(errs, d.conform(ps, v[k], at+"."+k)...)
				continue
			}
			switch extra := s["additionalProperties"].(type) {
			case bool:
				if !extra {
					errs = append(errs, fmt.Sprintf("%s: %q is not allowed", at, k))
				}
			case map[string]any:
				errs = append(errs, d.conform(extra, v[k], at+"."+k)...)
			default:
				if props != nil {
					errs = append(errs, fmt.Sprintf("%s: %q is not documented", at, k))
				}
			}
		}
	case []any:
		if items, ok := s["items"]; ok {
			for i, e := range v {
				errs = append(errs, d.conform(items, e, at+"["+strconv.Itoa(i)+"]")...)
			}
		}
	}
	return errs
}

// hasType reports whether v, decoded by encoding/json, is of the JSON
// Schema type (or one of the types) typ.
func hasType(typ, v any) bool {
	if types, ok := typ.([]any); ok {
		return slices.ContainsFunc(types, func(t any) bool { return hasType(t, v) })
	}
	switch typ {
	case "null":
		return v == nil
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	case "array":
		_, ok := v.([]any)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	}
	return false
}

func shortJSON(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		return string(b[:77]) + "..."
	}
	return string(b)
}

// TestOpenAPIResponses runs a session through every operation and checks
// each answer, success or problem, against the document.
func TestOpenAPIResponses(t *testing.T) {
	e := newWalletEnv(t, nil)
	cf := &conformer{t: t, e: e, doc: loadOpenAPI(t), seen: map[string]bool{}}
	do := cf.do
	id := func(m map[string]any) string { return m["id"].(string) }
	future := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	// Idempotency keys are global: each run needs its own.
	run := uuid.NewString()
	key := func(name string) map[string]string { return idem(run + "-" + name) }

	do(oaCall{method: "GET", path: "/healthz", noKey: true}, 200)
	do(oaCall{method: "GET", path: "/readyz", noKey: true}, 200)
	do(oaCall{method: "GET", path: "/metrics", noKey: true}, 200)
	do(oaCall{method: "GET", path: "/openapi.json", noKey: true}, 200)
	do(oaCall{method: "GET", path: "/v1/whoami"}, 200)

	// Customers and wallets.
	customer := "oa-" + uuid.NewString()
	do(oaCall{method: "POST", path: "/v1/customers", body: map[string]any{
		"id": customer, "name": "Acme", "email": "billing@acme.example", "metadata": map[string]any{"tier": "gold"},
	}}, 201)
	do(oaCall{method: "POST", path: "/v1/customers", body: map[string]any{"id": customer}}, 409)
	do(oaCall{method: "POST", path: "/v1/customers"}, 201) // no body: a generated id
	do(oaCall{method: "POST", path: "/v1/customers", body: "{"}, 400)
	do(oaCall{method: "GET", path: "/v1/customers/{id}", id: customer}, 200)
	do(oaCall{method: "GET", path: "/v1/customers/{id}", id: "oa-nobody"}, 404)

	w := do(oaCall{method: "POST", path: "/v1/wallets", body: map[string]any{
		"customer_id": customer, "asset": "CREDITS", "overage_policy": "allow", "overage_limit": "5",
	}}, 201)
	do(oaCall{method: "POST", path: "/v1/wallets", body: map[string]any{"customer_id": customer, "asset": "CREDITS"}}, 409)
	do(oaCall{method: "POST", path: "/v1/wallets", body: map[string]any{"customer_id": "oa-nobody", "asset": "USD"}}, 422)
	do(oaCall{method: "GET", path: "/v1/wallets/{id}", id: id(w)}, 200)
	do(oaCall{method: "GET", path: "/v1/wallets/{id}", id: "not-a-uuid"}, 404)
	do(oaCall{method: "GET", path: "/v1/customers/{id}/wallets", id: customer}, 200)
	do(oaCall{method: "GET", path: "/v1/wallets", query: "customer_id=" + url.QueryEscape(customer)}, 200)
	do(oaCall{method: "GET", path: "/v1/wallets", query: "customer_id=oa-nobody"}, 404)
	do(oaCall{method: "GET", path: "/v1/wallets"}, 422)
	do(oaCall{method: "PATCH", path: "/v1/wallets/{id}", id: id(w), header: key("patch-1"),
		body: map[string]any{"overage_limit": "7", "alert_thresholds": []int{90, 50}}}, 200)
	do(oaCall{method: "PATCH", path: "/v1/wallets/{id}", id: id(w), header: key("patch-1"),
		body: map[string]any{"overage_limit": "7", "alert_thresholds": []int{90, 50}}}, 200)
	do(oaCall{method: "PATCH", path: "/v1/wallets/{id}", id: id(w), header: key("patch-1"), body: map[string]any{"overage_limit": nil}}, 409)
	do(oaCall{method: "PATCH", path: "/v1/wallets/{id}", id: id(w), body: map[string]any{"overage_policy": "block"}}, 422)
	do(oaCall{method: "PATCH", path: "/v1/wallets/{id}", id: id(w), body: map[string]any{"overage_limit": 5}}, 422)
	do(oaCall{method: "PATCH", path: "/v1/wallets/{id}", id: id(w), body: map[string]any{"overage_limt": "5"}}, 422)
	do(oaCall{method: "PATCH", path: "/v1/wallets/{id}", id: uuid.NewString(), body: map[string]any{}}, 404)
	do(oaCall{method: "PATCH", path: "/v1/wallets/{id}", id: id(w), body: "{"}, 400)

	// Customers listed and changed.
	do(oaCall{method: "GET", path: "/v1/customers", query: "limit=1"}, 200)
	do(oaCall{method: "GET", path: "/v1/customers", query: "q=" + url.QueryEscape(customer)}, 200)
	do(oaCall{method: "GET", path: "/v1/customers", query: "cursor=nonsense"}, 422)
	do(oaCall{method: "PATCH", path: "/v1/customers/{id}", id: customer, body: map[string]any{"name": "Acme Corporation", "metadata": nil}}, 200)
	do(oaCall{method: "PATCH", path: "/v1/customers/{id}", id: customer, body: map[string]any{"email": "nobody"}}, 422)
	do(oaCall{method: "PATCH", path: "/v1/customers/{id}", id: "oa-nobody", body: map[string]any{"name": "x"}}, 404)
	do(oaCall{method: "PATCH", path: "/v1/customers/{id}", id: customer, body: "{"}, 400)

	// Grants.
	grant := map[string]any{
		"amount": "100", "kind": "paid", "priority": 10, "expires_at": future, "cost_basis": "10",
		"description": "launch pack", "metadata": map[string]any{"order": "o-1"},
	}
	g := do(oaCall{method: "POST", path: "/v1/wallets/{id}/grants", id: id(w), header: key("grant-1"), body: grant}, 201)
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/grants", id: id(w), header: key("grant-1"), body: grant}, 201)
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/grants", id: id(w), header: key("grant-1"),
		body: map[string]any{"amount": "1", "kind": "paid"}}, 409)
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/grants", id: id(w), body: map[string]any{"amount": 5, "kind": "paid"}}, 422)
	promo := do(oaCall{method: "POST", path: "/v1/wallets/{id}/grants", id: id(w),
		body: map[string]any{"amount": "50", "kind": "promotional", "priority": 90}}, 201)
	do(oaCall{method: "GET", path: "/v1/grants/{id}", id: id(g)}, 200)
	do(oaCall{method: "GET", path: "/v1/wallets/{id}/grants", id: id(w)}, 200)

	// Debits.
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/debits", id: id(w), header: key("debit-1"),
		body: map[string]any{"amount": "12.5", "description": "tokens", "metadata": map[string]any{"model": "gpt-4o"}}}, 201)
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/debits", id: id(w), header: key("debit-2"),
		body: map[string]any{"amount": "1000"}}, 402)
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/debits", id: id(w), header: key("debit-2"),
		body: map[string]any{"amount": "1000"}}, 402) // the refusal, replayed
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/debits", id: id(w), header: idem(strings.Repeat("k", 256)),
		body: map[string]any{"amount": "1"}}, 422)
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/debits", id: id(w), header: map[string]string{"Content-Type": "text/plain"},
		body: map[string]any{"amount": "1"}}, 415)
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/debits", id: id(w), body: `{"amount":"1","Amount":"2"}`}, 422)

	// Holds.
	h := do(oaCall{method: "POST", path: "/v1/wallets/{id}/holds", id: id(w),
		body: map[string]any{"amount": "5", "expires_in_seconds": 300, "metadata": map[string]any{"job": "j-1"}}}, 201)
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/holds", id: id(w), body: map[string]any{"amount": "100000"}}, 402)
	do(oaCall{method: "GET", path: "/v1/holds/{id}", id: id(h)}, 200)
	do(oaCall{method: "POST", path: "/v1/holds/{id}/capture", id: id(h), header: key("capture-1"),
		body: map[string]any{"amount": "2"}}, 200)
	do(oaCall{method: "POST", path: "/v1/holds/{id}/capture", id: id(h)}, 409)
	h2 := do(oaCall{method: "POST", path: "/v1/wallets/{id}/holds", id: id(w), body: map[string]any{"amount": "1"}}, 201)
	do(oaCall{method: "POST", path: "/v1/holds/{id}/capture", id: id(h2), body: map[string]any{"amount": "2"}}, 422)
	do(oaCall{method: "POST", path: "/v1/holds/{id}/void", id: id(h2)}, 200)
	do(oaCall{method: "POST", path: "/v1/holds/{id}/void", id: id(h2)}, 409)
	do(oaCall{method: "GET", path: "/v1/holds/{id}", id: uuid.NewString()}, 404)

	// Balances and the journal.
	do(oaCall{method: "GET", path: "/v1/wallets/{id}/balance", id: id(w)}, 200)
	do(oaCall{method: "GET", path: "/v1/wallets/{id}/balance", id: id(w),
		query: "at=" + url.QueryEscape(time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano))}, 200)
	do(oaCall{method: "GET", path: "/v1/wallets/{id}/balance", id: id(w), query: "at=yesterday"}, 422)
	page := do(oaCall{method: "GET", path: "/v1/wallets/{id}/entries", id: id(w), query: "limit=2"}, 200)
	next, _ := page["next_cursor"].(string)
	if next == "" {
		t.Fatal("entries: expected a second page")
	}
	do(oaCall{method: "GET", path: "/v1/wallets/{id}/entries", id: id(w), query: "limit=2&cursor=" + url.QueryEscape(next)}, 200)
	do(oaCall{method: "GET", path: "/v1/wallets/{id}/entries", id: id(w), query: "limit=501"}, 422)

	// Grant voids, after the holds on the grant have closed.
	do(oaCall{method: "POST", path: "/v1/grants/{id}/void", id: id(promo), header: key("void-1")}, 200)
	do(oaCall{method: "POST", path: "/v1/grants/{id}/void", id: id(promo), header: key("void-1")}, 200)
	do(oaCall{method: "POST", path: "/v1/grants/{id}/void", id: id(promo)}, 409)
	do(oaCall{method: "GET", path: "/v1/grants/{id}", id: id(promo)}, 200)

	// Keys.
	k := do(oaCall{method: "POST", path: "/v1/api-keys", body: map[string]any{"scope": "read", "name": "oa", "expires_in_seconds": 3600}}, 201)
	do(oaCall{method: "POST", path: "/v1/api-keys", body: map[string]any{"scope": "portal"}}, 422)
	do(oaCall{method: "GET", path: "/v1/api-keys", query: "limit=1"}, 200)
	do(oaCall{method: "GET", path: "/v1/api-keys", query: "scope=root"}, 422)
	read := k["key"].(string)
	do(oaCall{method: "GET", path: "/v1/whoami", key: read}, 200)
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/debits", id: id(w), key: read, body: map[string]any{"amount": "1"}}, 403)
	do(oaCall{method: "DELETE", path: "/v1/api-keys/{id}", id: id(k)}, 200)
	do(oaCall{method: "DELETE", path: "/v1/api-keys/{id}", id: "not-a-uuid"}, 404)
	do(oaCall{method: "GET", path: "/v1/wallets/{id}", id: id(w), key: read}, 401)
	do(oaCall{method: "GET", path: "/v1/wallets/{id}", id: id(w), noKey: true}, 401)

	portal := do(oaCall{method: "POST", path: "/v1/customers/{id}/portal-tokens", id: customer}, 201)
	do(oaCall{method: "POST", path: "/v1/customers/{id}/portal-tokens", id: "oa-nobody"}, 404)
	do(oaCall{method: "POST", path: "/v1/customers/{id}/portal-tokens", id: customer,
		body: map[string]any{"expires_in_seconds": 31 * 24 * 3600}}, 422)
	do(oaCall{method: "GET", path: "/v1/wallets/{id}/balance", id: id(w), key: portal["key"].(string)}, 200)
	do(oaCall{method: "GET", path: "/v1/customers/{id}", id: "oa-other", key: portal["key"].(string)}, 404)

	// Say which operations no successful call checked, without failing:
	// routes mounted by other constructors (events, say) need an app this
	// test does not build.
	for _, op := range slices.Sorted(maps.Keys(cf.doc.ops)) {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(cf.seen)), func(s string) bool {
			return strings.HasPrefix(s, op+" → 2")
		}) {
			t.Logf("%s: no successful answer was checked against the document", op)
		}
	}
}

// TestOpenAPIMeteringResponses runs the metering operations, which need an
// app with a metering service, and checks each answer against the
// document.
func TestOpenAPIMeteringResponses(t *testing.T) {
	m := newMeteringEnv(t)
	cf := &conformer{t: t, e: m.walletEnv, doc: loadOpenAPI(t), seen: map[string]bool{}}
	do := cf.do
	id := func(m map[string]any) string { return m["id"].(string) }
	f := m.newWallet(t, nil)
	m.grant(t, f.wallet, map[string]any{"amount": "1", "kind": "paid"})
	usd := do(oaCall{method: "POST", path: "/v1/wallets", body: map[string]any{"customer_id": f.customer, "asset": "USD"}}, 201)
	walletless := do(oaCall{method: "POST", path: "/v1/customers"}, 201)

	// Meters.
	event := uniq("oa.llm")
	tokens := do(oaCall{method: "POST", path: "/v1/meters", body: map[string]any{
		"code": uniq("oa-tokens"), "event_name": event, "aggregation": "sum", "property": "tokens",
		"filters": map[string][]string{"region": {"eu", "us"}}, "group_by": []string{"model"},
	}}, 201)
	users := do(oaCall{method: "POST", path: "/v1/meters", body: map[string]any{
		"code": uniq("oa-users"), "event_name": event, "aggregation": "unique_count", "property": "user",
	}}, 201)
	raw := do(oaCall{method: "POST", path: "/v1/meters", body: map[string]any{
		"code": uniq("oa-raw"), "event_name": uniq("oa.raw"), "aggregation": "sum", "property": "n",
	}}, 201)
	do(oaCall{method: "POST", path: "/v1/meters", body: map[string]any{
		"code": uniq("oa-count"), "event_name": uniq("oa.count"), "aggregation": "count",
	}}, 201)
	do(oaCall{method: "POST", path: "/v1/meters", body: map[string]any{
		"code": tokens["code"], "event_name": event, "aggregation": "count"}}, 409)
	do(oaCall{method: "POST", path: "/v1/meters", body: map[string]any{
		"code": uniq("oa-bad"), "event_name": event, "aggregation": "median"}}, 422)
	do(oaCall{method: "POST", path: "/v1/meters", body: "{"}, 400)
	do(oaCall{method: "GET", path: "/v1/meters"}, 200)
	do(oaCall{method: "GET", path: "/v1/meters/{code}", id: raw["code"].(string)}, 200)
	do(oaCall{method: "GET", path: "/v1/meters/{code}", id: "oa-no-such-meter"}, 404)

	// Prices, one of each model.
	tokensCode, usersCode := tokens["code"].(string), users["code"].(string)
	do(oaCall{method: "POST", path: "/v1/prices", body: map[string]any{
		"meter_code": tokensCode, "asset": "CREDITS", "model": "per_unit", "unit_price": "0.000003",
		"dimensions": map[string]string{"model": "gpt"},
	}}, 201)
	do(oaCall{method: "POST", path: "/v1/prices", body: map[string]any{
		"meter_code": tokensCode, "asset": "CREDITS", "model": "graduated", "free_units": "10",
		"tiers": []any{
			map[string]any{"up_to": "1000", "unit_price": "0.00001"},
			map[string]any{"up_to": nil, "unit_price": "0.000005", "flat_price": "0.5"},
		},
	}}, 201)
	do(oaCall{method: "POST", path: "/v1/prices", body: map[string]any{
		"meter_code": tokensCode, "asset": "USD", "model": "volume",
		"tiers": []any{map[string]any{"up_to": "100", "unit_price": "1"}, map[string]any{"unit_price": "0.5"}},
	}}, 201)
	do(oaCall{method: "POST", path: "/v1/prices", body: map[string]any{
		"meter_code": usersCode, "asset": "USD", "model": "package", "package_size": "10", "package_price": "2.5",
	}}, 201)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	scheduled := do(oaCall{method: "POST", path: "/v1/prices", body: map[string]any{
		"meter_code": tokensCode, "asset": "CREDITS", "model": "per_unit", "unit_price": "1",
		"dimensions": map[string]string{"model": "gpt"}, "effective_at": future,
	}}, 201)
	do(oaCall{method: "POST", path: "/v1/prices", body: map[string]any{
		"meter_code": tokensCode, "asset": "CREDITS", "model": "per_unit", "unit_price": "1",
		"dimensions": map[string]string{"model": "gpt"}, "effective_at": future,
	}}, 409)
	do(oaCall{method: "POST", path: "/v1/prices/{id}/archive", id: id(scheduled)}, 200)
	do(oaCall{method: "POST", path: "/v1/prices/{id}/archive", id: uuid.NewString()}, 404)
	do(oaCall{method: "GET", path: "/v1/prices", query: "meter_code=" + tokensCode + "&asset=CREDITS&at=" + url.QueryEscape(future)}, 200)
	do(oaCall{method: "GET", path: "/v1/prices", query: "at=yesterday"}, 422)
	do(oaCall{method: "POST", path: "/v1/prices", body: map[string]any{
		"meter_code": tokensCode, "asset": "CREDITS", "model": "per_unit", "unit_price": 1,
	}}, 422)
	do(oaCall{method: "POST", path: "/v1/prices", body: "{"}, 400)
	do(oaCall{method: "GET", path: "/v1/prices"}, 200)

	// Events: applied, duplicated and rejected in one batch. The credits
	// do not cover it all, and the wallet's policy is block: usage is
	// charged anyway.
	ev := func(id, name string, props map[string]any) map[string]any {
		return map[string]any{"event_id": id + "-" + f.customer, "customer_id": f.customer, "event_name": name, "properties": props}
	}
	batch := []any{
		ev("oa-1", event, map[string]any{"tokens": 5000, "model": "gpt", "region": "eu", "user": "u1"}),
		ev("oa-2", event, map[string]any{"tokens": "250.5", "model": "other", "region": "us", "user": "u2"}),
		ev("oa-3", raw["event_name"].(string), map[string]any{"n": "1.00000000000000001"}),
		ev("oa-4", event, map[string]any{"tokens": -1, "region": "eu"}),
		ev("oa-5", "oa.unmetered", nil),
		"not an event",
		map[string]any{"event_id": "oa-6", "customer_id": "oa-nobody", "event_name": event},
		map[string]any{"event_id": "oa-7", "customer_id": walletless["id"], "event_name": event,
			"properties": map[string]any{"tokens": 1, "region": "eu", "user": "u1"}},
	}
	do(oaCall{method: "POST", path: "/v1/events", body: map[string]any{"events": batch}}, 202)
	do(oaCall{method: "POST", path: "/v1/events", body: map[string]any{"events": batch[:2]}}, 202)
	do(oaCall{method: "POST", path: "/v1/events", body: map[string]any{"events": []any{}}}, 422)
	do(oaCall{method: "POST", path: "/v1/events", body: `{"events": [`}, 400)
	do(oaCall{method: "POST", path: "/v1/events", key: m.key(t, apikey.Read, ""), body: map[string]any{"events": batch[:1]}}, 403)
	do(oaCall{method: "GET", path: "/v1/wallets/{id}/entries", id: f.wallet}, 200)
	do(oaCall{method: "GET", path: "/v1/wallets/{id}/entries", id: id(usd)}, 200)
	do(oaCall{method: "GET", path: "/v1/wallets/{id}/balance", id: id(usd)}, 200)

	// Rejected events.
	page := do(oaCall{method: "GET", path: "/v1/events/rejected", query: "limit=1&customer_id=" + url.QueryEscape(f.customer)}, 200)
	next, _ := page["next_cursor"].(string)
	if next == "" {
		t.Fatal("rejected: expected a second page")
	}
	do(oaCall{method: "GET", path: "/v1/events/rejected", query: "limit=1&customer_id=" + url.QueryEscape(f.customer) + "&cursor=" + url.QueryEscape(next)}, 200)
	do(oaCall{method: "GET", path: "/v1/events/rejected"}, 200)
	do(oaCall{method: "GET", path: "/v1/events/rejected", query: "cursor=nonsense"}, 422)
	portal := m.key(t, apikey.Portal, f.customer)
	do(oaCall{method: "GET", path: "/v1/events/rejected", key: portal, query: "customer_id=" + url.QueryEscape(f.customer)}, 200)
	do(oaCall{method: "GET", path: "/v1/events/rejected", key: portal}, 404)

	// Usage.
	usage := "/v1/customers/{id}/usage"
	do(oaCall{method: "GET", path: usage, id: f.customer, query: "meter=" + tokensCode}, 200)
	do(oaCall{method: "GET", path: usage, id: f.customer, key: portal, query: "meter=" + usersCode + "&window=day&from=" +
		url.QueryEscape(time.Now().Add(-48*time.Hour).UTC().Format(time.RFC3339))}, 200)
	do(oaCall{method: "GET", path: usage, id: f.customer, query: "meter=" + raw["code"].(string)}, 200)
	do(oaCall{method: "GET", path: usage, id: f.customer, query: "meter=,"}, 422)
	do(oaCall{method: "GET", path: usage, id: f.customer, query: "meter=" + tokensCode + "&window=week"}, 422)
	do(oaCall{method: "GET", path: usage, id: "oa-nobody", query: "meter=" + tokensCode}, 404)
	do(oaCall{method: "GET", path: usage, id: f.customer, noKey: true, query: "meter=" + tokensCode}, 401)
	do(oaCall{method: "GET", path: usage, id: f.customer, query: "window=month"}, 200)
	do(oaCall{method: "GET", path: usage, id: f.customer, query: "meter=" + tokensCode + "," + usersCode + "&window=day"}, 200)
	do(oaCall{method: "GET", path: usage, id: f.customer, query: "meter=" + tokensCode + "&group_by=model"}, 200)
	do(oaCall{method: "GET", path: usage, id: f.customer, query: "meter=" + usersCode + "&group_by=model"}, 422)
	do(oaCall{method: "GET", path: usage, id: f.customer, query: "group_by=model&format=csv"}, 200)
	do(oaCall{method: "GET", path: usage, id: f.customer, header: map[string]string{"Accept": "text/csv"}}, 200)

	// The events audit.
	evPage := do(oaCall{method: "GET", path: "/v1/events", query: "limit=1&customer_id=" + url.QueryEscape(f.customer)}, 200)
	if next, _ := evPage["next_cursor"].(string); next == "" {
		t.Error("events: expected a second page")
	} else {
		do(oaCall{method: "GET", path: "/v1/events", query: "limit=1&customer_id=" + url.QueryEscape(f.customer) + "&cursor=" + url.QueryEscape(next)}, 200)
	}
	do(oaCall{method: "GET", path: "/v1/events", key: portal, query: "event_name=" + url.QueryEscape(event)}, 200)
	do(oaCall{method: "GET", path: "/v1/events", key: portal, query: "customer_id=oa-nobody"}, 404)
	do(oaCall{method: "GET", path: "/v1/events", query: "from=yesterday"}, 422)
	do(oaCall{method: "GET", path: "/v1/events/{event_id}", id: "oa-1-" + f.customer}, 200)
	do(oaCall{method: "GET", path: "/v1/events/{event_id}", id: "oa-1-" + f.customer, key: portal}, 200)
	do(oaCall{method: "GET", path: "/v1/events/{event_id}", id: "oa-never-sent"}, 404)

	// CloudEvents, one and a batch (one of them bad).
	ce := func(id string) map[string]any {
		return map[string]any{"specversion": "1.0", "id": id + "-" + f.customer, "source": "/oa", "type": event, "subject": f.customer,
			"data": map[string]any{"tokens": 10, "model": "gpt", "region": "eu", "user": "u3"}}
	}
	do(oaCall{method: "POST", path: "/v1/events", header: map[string]string{"Content-Type": "application/cloudevents+json"}, body: ce("oa-ce-1")}, 202)
	bad := ce("oa-ce-3")
	delete(bad, "subject")
	do(oaCall{method: "POST", path: "/v1/events", header: map[string]string{"Content-Type": "application/cloudevents-batch+json"},
		body: []any{ce("oa-ce-2"), bad}}, 202)
	do(oaCall{method: "POST", path: "/v1/events", header: map[string]string{"Content-Type": "application/cloudevents-batch+json"}, body: `{}`}, 400)
	do(oaCall{method: "POST", path: "/v1/events", header: map[string]string{"Content-Type": "application/cloudevents-batch+json"}, body: `[]`}, 422)
	do(oaCall{method: "POST", path: "/v1/events", header: map[string]string{"Content-Type": "text/plain"}, body: `{}`}, 415)

	// Archiving: the meter answers archived, twice; its events are no
	// longer counted.
	archived := do(oaCall{method: "POST", path: "/v1/meters/{code}/archive", id: raw["code"].(string)}, 200)
	if archived["archived_at"] == nil {
		t.Errorf("archived meter without archived_at: %v", archived)
	}
	again := do(oaCall{method: "POST", path: "/v1/meters/{code}/archive", id: raw["code"].(string)}, 200)
	if again["archived_at"] != archived["archived_at"] {
		t.Errorf("archived again at %v, first at %v", again["archived_at"], archived["archived_at"])
	}
	do(oaCall{method: "POST", path: "/v1/meters/{code}/archive", id: "oa-no-such-meter"}, 404)
	do(oaCall{method: "POST", path: "/v1/meters/{code}/archive", id: raw["code"].(string), body: map[string]any{"force": true}}, 422)
	res := do(oaCall{method: "POST", path: "/v1/events", body: map[string]any{"events": []any{
		ev("oa-archived", raw["event_name"].(string), map[string]any{"n": 1})}}}, 202)
	if rej, _ := res["rejected"].([]any); len(rej) != 1 || rej[0].(map[string]any)["code"] != "no_meter" {
		t.Errorf("an event of an archived meter: %v", res)
	}

	// Last: with the database gone, a batch is a 503 to retry.
	m.db.Pool.Close()
	do(oaCall{method: "POST", path: "/v1/events", body: map[string]any{"events": batch[:1]}}, 503)

	for _, op := range slices.Sorted(maps.Keys(cf.doc.ops)) {
		if !strings.Contains(op, "/meters") && !strings.Contains(op, "/prices") && !strings.Contains(op, "/events") && !strings.HasSuffix(op, "/usage") {
			continue
		}
		if !slices.ContainsFunc(slices.Collect(maps.Keys(cf.seen)), func(s string) bool { return strings.HasPrefix(s, op+" → 2") }) {
			t.Errorf("%s: no successful answer was checked against the document", op)
		}
	}
}
