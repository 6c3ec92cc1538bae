-- Eight points on a line; every mean met along the way is exact in binary.  fit.sql works its
-- fits out by hand; models.sql saves one of them.
CREATE TABLE line (id int PRIMARY KEY, v real[]);
INSERT INTO line VALUES (1, '{0}'), (2, '{1}'), (3, '{2}'), (4, '{3}'),
                        (5, '{8}'), (6, '{9}'), (7, '{10}'), (8, '{25}');
