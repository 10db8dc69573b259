package jsonstr

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzAppend checks Append against encoding/json, with HTML escaping on and off.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "Ana", `Jo"ão \ <b>&`, "a\nb\tc\r\b\f\x00\x1f\x7f", "\u2028\u2029", "\xff\xfe", "\ufffd", "🎉"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, html := range []bool{true, false} {
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(html)
			require.NoError(t, enc.Encode(s))
			require.Equal(t, strings.TrimSuffix(want.String(), "\n"), string(Append(nil, s, html)), "escapeHTML %v", html)
		}
	})
}
