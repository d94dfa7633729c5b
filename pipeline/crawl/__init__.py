"""One page: claim -> fetch -> parse -> complete.

`worker` runs the loop; `fetcher` makes the request (bounded, polite, in scope);
`politeness` keeps each host's pace, shared through the store; `pagination` decides a
report's next page and guards against runaway chains; `retry` is the backoff policy.
"""
