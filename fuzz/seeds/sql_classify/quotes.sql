SELECT $$a;b$$, 'x''y' FROM t -- c
/* d */ TRUNCATE t;