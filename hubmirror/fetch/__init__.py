"""Moving bytes from an upstream into the store: the one room every download goes through.

- `http.py`: sessions, API requests, ranged GETs that resume, bounded ranged GETs, spooling, failed answers as
  one-line errors (what source plugins call).
- `retries.py`: the retry policy and budgets every request and download shares.
- `download.py`: `Download`, the byte stream a source opens.
- `stream.py`: one file in one stream, resumed from the bytes held.
- `pieces.py`: one large file in pieces over several connections.
- `stored.py`: what the store holds already, and where partial bytes are kept.
- `files.py`: the files of a pull, in parallel; the one place that decides which way each file comes, and the one
  wording of a failure.
"""
