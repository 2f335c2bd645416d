"""The review workflow's services: versioned annotations, comments, verdicts and review queues (docs/review.md).

No HTTP here (app.api.review_routes calls these); every change writes its audit event in the same transaction.
"""
