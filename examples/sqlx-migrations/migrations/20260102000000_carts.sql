CREATE TABLE carts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id));
CREATE INDEX carts_user ON carts (user_id);
