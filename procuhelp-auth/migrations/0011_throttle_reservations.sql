-- Sign-in throttle (issue #11 findings 3 and 4): attempts are reserved before they are
-- verified, and second-factor keys also carry a daily count with a hard cap.
--
-- `failures` now counts attempts reserved since the key's last success (a success gives
-- its reservation back), `last_failure` is the time of the last reservation. The daily
-- count starts with the first attempt of a day (`day_started`) and is never reset by a
-- sign-in; only the day running out (or an admin's unlock) starts it afresh.
ALTER TABLE app.login_throttle
    ADD COLUMN day_started  timestamptz,
    ADD COLUMN day_failures integer NOT NULL DEFAULT 0 CHECK (day_failures >= 0);

COMMENT ON TABLE app.login_throttle IS
    'Sign-in attempts per keyed hash (account, second factor, address); reserved before verification. See docs/auth.md.';
