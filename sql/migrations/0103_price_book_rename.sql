ALTER TABLE price_book RENAME TO prices;
