package template

import (
	"fmt"
	"strings"
)

// CanonicalLocale writes a locale tag the way Herald stores it: "_" becomes "-", the language
// is lower case, a two-letter region upper case, a four-letter script title case ("es_pe" →
// "es-PE", "ZH_hant_tw" → "zh-Hant-TW"). The error says why a tag is not a locale; valid tags
// are a 2–3 letter language followed by subtags of 1–8 letters or digits.
func CanonicalLocale(tag string) (string, error) {
	if tag == "" {
		return "", fmt.Errorf("empty locale")
	}
	subtags := strings.FieldsFunc(tag, func(r rune) bool { return r == '-' || r == '_' })
	if len(subtags) == 0 || strings.Count(tag, "-")+strings.Count(tag, "_") != len(subtags)-1 {
		return "", fmt.Errorf("locale %q: empty subtag", tag)
	}
	for i, s := range subtags {
		letters, digits := 0, 0
		for j := 0; j < len(s); j++ {
			switch c := s[j]; {
			case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
				letters++
			case c >= '0' && c <= '9':
				digits++
			default:
				return "", fmt.Errorf("locale %q: invalid character %q", tag, rune(c))
			}
		}
		switch {
		case i == 0 && (digits > 0 || len(s) < 2 || len(s) > 3):
			return "", fmt.Errorf("locale %q: the language must be 2 or 3 letters", tag)
		case len(s) > 8:
			return "", fmt.Errorf("locale %q: subtag %q is longer than 8 characters", tag, s)
		case i == 0:
			subtags[i] = strings.ToLower(s)
		case len(s) == 2 && digits == 0:
			subtags[i] = strings.ToUpper(s)
		case len(s) == 4 && digits == 0:
			subtags[i] = strings.ToUpper(s[:1]) + strings.ToLower(s[1:])
		default:
			subtags[i] = strings.ToLower(s)
		}
	}
	return strings.Join(subtags, "-"), nil
}

// sameLocale compares two tags ignoring ASCII case and treating "_" as "-", without allocating.
func sameLocale(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := foldLocaleByte(a[i]), foldLocaleByte(b[i])
		if x != y {
			return false
		}
	}
	return true
}

func foldLocaleByte(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case c >= 'A' && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}

// language is the tag's language subtag: "es" for "es-PE", "es_PE" or "es_PE.UTF-8".
func language(tag string) string {
	if i := strings.IndexAny(tag, "-_.@"); i >= 0 {
		return tag[:i]
	}
	return tag
}

// pick implements the fallback over locales (n of them, the i-th from at(i)): the user's locale
// exactly (case-insensitive, "_" = "-"), else its language alone, else def.
func pick(n int, at func(int) string, user string, def int) int {
	if user == "" {
		return def
	}
	for i := 0; i < n; i++ {
		if sameLocale(at(i), user) {
			return i
		}
	}
	if lang := language(user); lang != user && lang != "" {
		for i := 0; i < n; i++ {
			if sameLocale(at(i), lang) {
				return i
			}
		}
	}
	return def
}
