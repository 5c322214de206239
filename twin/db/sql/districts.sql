-- The home district of residents (twin.person.district_id, the LIST partition key of
-- twin.person, migration 0023): the admin area at level 'district' above an area
-- (twin.district_of in SQL; these statements do the same for every area at once).

-- name: building_districts
-- The district of each building (through the grid patch or other area it lies in).
WITH RECURSIVE d(area, district) AS (
    SELECT id, id FROM twin.admin_area WHERE level = 'district'
    UNION ALL
    SELECT a.id, d.district FROM twin.admin_area a JOIN d ON a.parent_id = d.area
)
SELECT b.id, d.district FROM twin.building b JOIN d ON d.area = b.area_id
WHERE b.id = ANY (%(ids)s::bigint[])

-- name: cell_districts
-- The district of each H3 cell: that of the area holding the largest share of the cell.
WITH RECURSIVE d(area, district) AS (
    SELECT id, id FROM twin.admin_area WHERE level = 'district'
    UNION ALL
    SELECT a.id, d.district FROM twin.admin_area a JOIN d ON a.parent_id = d.area
)
SELECT DISTINCT ON (c.cell) c.cell, d.district
FROM twin.admin_area_cell c JOIN d ON d.area = c.area_id
WHERE c.cell = ANY (%(cells)s::bigint[])
ORDER BY c.cell, c.share DESC, d.district

-- name: districts
SELECT id FROM twin.admin_area WHERE level = 'district' ORDER BY id
