package ui_test

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// kbJS names the page's controls the same way for the list of them and for the focused one:
// kbAll lists every visible control a keyboard should reach (a radio group is one stop), and
// kbActive says which one has the focus and whether the focus is visible (an outline or a
// shadow).
const kbJS = `
var kbKey = function (e) {
  if (e.type === "radio") return "radio:" + e.name;
  return [e.tagName.toLowerCase(), e.id, e.getAttribute("name"), e.getAttribute("href"), e.getAttribute("data-key"),
    (e.textContent || "").trim().slice(0, 40)].join("|");
};
var kbVisible = function (e) {
  if (e.disabled || e.getClientRects().length === 0) return false;
  // checkVisibility also sees what a closed <details> hides.
  if (e.checkVisibility && !e.checkVisibility({ contentVisibilityAuto: true, visibilityProperty: true })) return false;
  var s = getComputedStyle(e);
  return s.visibility !== "hidden" && s.display !== "none";
};
var kbAll = function () {
  var out = [];
  document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex="-1"])')
    .forEach(function (e) { if (kbVisible(e)) { var k = kbKey(e); if (out.indexOf(k) < 0) out.push(k); } });
  return out;
};
var kbActive = function () {
  var e = document.activeElement;
  if (!e || e === document.body) return ["", true];
  var s = getComputedStyle(e);
  var shown = (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== "none";
  return [kbKey(e), shown];
};
`

// keyboardReachable tabs through the page from its start: every visible control must take
// the focus, and the focus must be visible on each.
func keyboardReachable() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		want, err := chromedp.Evaluate[[]string](kbJS+"kbAll()")(ctx, t)
		if err != nil {
			return err
		}
		if _, err := chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)`)(ctx, t); err != nil {
			return err
		}
		reached := map[string]bool{}
		var unseen []string
		// Date and time inputs take a Tab per part (hours, minutes…): allow three per control.
		for i := 0; i < 3*len(want)+5 && len(reached) < len(want); i++ {
			if _, err := chromedp.KeyEvent(kb.Tab)(ctx, t); err != nil {
				return err
			}
			got, err := chromedp.Evaluate[[]any](kbJS+"kbActive()")(ctx, t)
			if err != nil {
				return err
			}
			key, _ := got[0].(string)
			shown, _ := got[1].(bool)
			if key == "" {
				continue
			}
			if !shown {
				unseen = append(unseen, key)
			}
			reached[key] = true
		}
		var missing []string
		for _, k := range want {
			if !reached[k] {
				missing = append(missing, k)
			}
		}
		slices.Sort(unseen)
		unseen = slices.Compact(unseen)
		switch {
		case len(missing) > 0:
			return fmt.Errorf("%d of %d controls cannot be reached with Tab: %s", len(missing), len(want), strings.Join(missing, "; "))
		case len(unseen) > 0:
			return fmt.Errorf("the focus is not visible on: %s", strings.Join(unseen, "; "))
		}
		return nil
	})
}
