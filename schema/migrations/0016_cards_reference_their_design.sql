-- A card's design is one of its own merchant's designs (found in issue 16's tenant probe: POST /v1/cards
-- and /v1/card_batches took any design_id, another merchant's or none at all).
--
-- A reference that names no design of the card's merchant could only come from that gap; it pointed at
-- nothing the card could show (its pictures already fell back to no design), so it is cleared, and the
-- constraint then holds for every row. value/cards.py answers a violation as design_not_found.
UPDATE cards c SET design_id = NULL
 WHERE design_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM designs d WHERE d.merchant_id = c.merchant_id AND d.id = c.design_id);

ALTER TABLE cards ADD CONSTRAINT card_design_of_its_merchant
    FOREIGN KEY (merchant_id, design_id) REFERENCES designs (merchant_id, id);
