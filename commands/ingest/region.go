package ingest

import "github.com/nyaruka/phonenumbers"

// validRegion reports whether region (ISO 3166 alpha-2, upper case) has phone numbers.
func validRegion(region string) bool {
	return phonenumbers.GetExampleNumber(region) != nil
}
