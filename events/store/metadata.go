package store

import (
	"encoding/json"

	"herald/events"
)

func metadataJSON(md events.Metadata) string {
	b, err := json.Marshal(md)
	if err != nil { // a struct of strings always marshals
		return "{}"
	}
	return string(b)
}
