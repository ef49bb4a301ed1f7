"""How commands print a record: one JSON object (--json) or one `key: value` line per field."""

import json


def print_record(record: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(record))
    else:
        for key, value in record.items():
            print(f"{key}: {value}")
