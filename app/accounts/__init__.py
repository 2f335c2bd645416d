"""Accounts: users and roles, password hashing, API tokens, signed sessions, the login throttle and the audit
trail. The domain layer only — HTTP routes (app/api) and pages (app/web) call these services.

Modules: `roles` (the order of roles), `passwords` (argon2id), `users` (the user service), `tokens` (bearer
tokens), `sessions` (signed cookie values and CSRF tokens), `secret` (the signing key), `throttle` (failed
logins), `audit` (record and query the audit trail), `cli` (`medview users …`).
"""
