package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"herald/handlers/twilio/twiliosim"
)

// chromium finds Debian's Chromium (or HERALD_CHROME); "" when there is none.
func chromium() string {
	if p := os.Getenv("HERALD_CHROME"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// tour drives the UI in a real browser. Every step that fails leaves a screenshot behind;
// with shots set (make demo-recording) every step leaves one, and pause slows it for a viewer.
type tour struct {
	t     *testing.T
	w     *world
	ctx   context.Context
	dir   string // failure screenshots
	shots string // every step's screenshot ("" for none)
	pause time.Duration
	n     int
}

func newTour(t *testing.T, w *world, zone string) *tour {
	t.Helper()
	bin := chromium()
	if bin == "" {
		t.Skip("no Chromium found (install Debian's chromium or set HERALD_CHROME): the browser test is skipped")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 800),
		chromedp.Env("TZ="+zone), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx), "start Chromium at %s", bin)
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)))
	dir := os.Getenv("HERALD_UI_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "herald-ui-screenshots")
	}
	return &tour{t: t, w: w, ctx: ctx, dir: filepath.Join(dir, t.Name()), shots: os.Getenv("HERALD_DEMO_SHOTS")}
}

// step runs one part of the walk-through with a time limit; on failure it saves a screenshot
// of the page and stops the test.
func (tr *tour) step(name string, actions ...chromedp.Action[chromedp.Void]) {
	tr.t.Helper()
	tr.n++
	ctx, cancel := context.WithTimeout(tr.ctx, 60*time.Second)
	defer cancel()
	err := chromedp.Do(ctx, actions...)
	if err != nil {
		path := tr.screenshot(tr.dir, name)
		loc, _ := chromedp.Run(tr.ctx, chromedp.Location())
		tr.t.Fatalf("step %d %q failed at %s: %v (screenshot: %s)", tr.n, name, loc, err, path)
	}
	if tr.shots != "" {
		tr.screenshot(tr.shots, name)
	}
	if tr.pause > 0 {
		time.Sleep(tr.pause)
	}
}

func (tr *tour) screenshot(dir, name string) string {
	ctx, cancel := context.WithTimeout(tr.ctx, 10*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "none: " + err.Error()
	}
	_ = os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, fmt.Sprintf("%02d-%s.png", tr.n, strings.NewReplacer(" ", "-", "/", "_").Replace(name)))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		return "none: " + err.Error()
	}
	return path
}

func (tr *tour) open(path string) chromedp.Action[chromedp.Void] {
	return chromedp.Navigate(tr.w.srv.URL + path)
}

// reloadUntil opens path again every half second until sel's text contains want (for a page
// that is not live).
func (tr *tour) reloadUntil(path, sel, want string) chromedp.Action[chromedp.Void] {
	expr := fmt.Sprintf(`(function(){var e=document.querySelector(%s); return !!e && e.innerText.includes(%s)})()`, js(sel), js(want))
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for deadline := time.Now().Add(45 * time.Second); ; {
			if _, err := tr.open(path)(ctx, t); err != nil {
				return err
			}
			if ok, err := chromedp.Evaluate[bool](expr)(ctx, t); err == nil && ok {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s never showed %q in %s", path, want, sel)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

// waitText waits until the element's text contains want. It asks again every 100 ms and
// rides over navigations (an evaluation interrupted by a page load is asked again).
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	expr := fmt.Sprintf(`(function(){var e=document.querySelector(%s); return !!e && e.innerText.includes(%s)})()`, js(sel), js(want))
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		deadline := time.Now().Add(45 * time.Second)
		for {
			ok, err := chromedp.Evaluate[bool](expr)(ctx, t)
			if err == nil && ok {
				return nil
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				text, _ := chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%s)||{innerText:"(no element)"}).innerText`, js(sel)))(ctx, t)
				if len(text) > 600 {
					text = text[:600] + "…"
				}
				return fmt.Errorf("waiting for %q in %s (last error: %v); it shows: %s", want, sel, err, text)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// choose picks value in a <select> as the keyboard would (and tells the page it changed).
func choose(sel, value string) chromedp.Action[chromedp.Void] {
	return eval(fmt.Sprintf(`(function(){var e=document.querySelector(%s); e.value=%s; e.dispatchEvent(new Event("change",{bubbles:true}))})()`, js(sel), js(value)))
}

func eval(expr string) chromedp.Action[chromedp.Void] { return chromedp.Evaluate[chromedp.Void](expr) }

// TestBrowserWalkthrough drives Herald's UI in headless Chromium against the real server
// (PostgreSQL, Redis, relay, projections, API, saga, webhooks) and the Twilio simulator:
// log in → import a CSV and read the report → create a segment (live count) and a template
// (preview) → create, preview and launch a campaign → watch the live counters reach read →
// an inbound STOP shows in the inbox → reply to a user inside the 24-hour window.
func TestBrowserWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test is not short")
	}
	if chromium() == "" {
		t.Skip("no Chromium found (install Debian's chromium or set HERALD_CHROME): the browser test is skipped")
	}
	w := newWorld(t, true)
	tr := newTour(t, w, "America/Lima")
	if dir := os.Getenv("HERALD_DEMO_FRAMES"); dir != "" {
		tr.record(dir)
	}
	if d := os.Getenv("HERALD_DEMO_PAUSE"); d != "" {
		tr.pause, _ = time.ParseDuration(d)
	}
	walkthrough(t, tr)
}

func walkthrough(t *testing.T, tr *tour) {
	w := tr.w
	csv := filepath.Join(t.TempDir(), "customers.csv")
	require.NoError(t, os.WriteFile(csv, []byte("phone,first_name,city,consent,topics\n"+
		"+51987650001,Ana,Lima,OPT_IN,deals\n"+
		"+51987650002,Bruno,Cusco,OPT_IN,deals\n"+
		"987650003,Carla,Lima,OPT_IN,deals\n"+
		"12,Broken,Lima,OPT_IN,deals\n"), 0o644))

	tr.step("login",
		tr.open("/"),
		chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.SendKeys(chromedp.CSS("#key"), adminKey),
		chromedp.Click(chromedp.CSS("form[action='/login'] button")),
		waitText("h1", "Dashboard"),
		waitText("main", "No campaigns yet"),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			zone, err := chromedp.Value(chromedp.CSS("#zone-setting"))(ctx, t)
			if err == nil && zone != "America/Lima" {
				err = fmt.Errorf("the session's zone is %q, want the browser's America/Lima", zone)
			}
			return err
		}),
	)
	tr.step("import",
		tr.open("/imports/new"),
		chromedp.SetValue(chromedp.CSS("#region"), "PE"),
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{csv}),
		chromedp.Click(chromedp.CSS("form[action='/imports'] button")),
		waitText("h1", "completed"),
		waitText("main", "Rejected, by reason"),
		chromedp.WaitVisible(chromedp.CSS("a[href$='rejections.csv']")),
	)
	tr.step("users",
		tr.open("/users?q=Lima"),
		waitText("table", "+51987650003"),
	)
	tr.step("segment builder",
		tr.open("/segments/new"),
		chromedp.SendKeys(chromedp.CSS("#name"), "Lima customers"),
		// The example rule (consent OPT_IN and country PE) is drawn as conditions; add one on an
		// attribute with the keyboard and the mouse, and the count follows.
		waitText("#rule-count", "3 users match"),
		chromedp.Click(chromedp.CSS(`[data-key="root:add"]`)),
		choose(`[data-key="and[2]:field"]`, ""),
		chromedp.SendKeys(chromedp.CSS(`[data-key="and[2]:attr"]`), "city"),
		eval(`(function(){var e=document.querySelector('[data-key="and[2]:value"]'); e.value="Lima"; e.dispatchEvent(new Event("input"))})()`),
		waitText("#rule-count", "2 users match"),
		// An operator attributes do not take: the API's error shows at that operator.
		choose(`[data-key="and[2]:op"]`, "within_last"),
		chromedp.WaitVisible(chromedp.CSS(`[data-path="and[2]"] > [data-part="op"][aria-invalid="true"]`)),
		waitText(`[data-path="and[2]"] > .rule-error`, "op"),
		choose(`[data-key="and[2]:op"]`, "eq"),
		waitText("#rule-count", "2 users match"),
	)
	tr.step("segment",
		chromedp.SetValue(chromedp.CSS("#rule"), `{"attr": "city", "op": "eq", "value": "Lima"}`),
		eval(`document.getElementById("rule").dispatchEvent(new Event("input"))`),
		waitText("#rule-count", "2 users match"),
		chromedp.SetValue(chromedp.CSS("#rule"), `{"attr": "city", "op": "gt", "value": }`),
		eval(`document.getElementById("rule").dispatchEvent(new Event("input"))`),
		waitText("#rule-count", "not valid JSON"),
		chromedp.SetValue(chromedp.CSS("#rule"), `{"or": [{"attr": "city", "op": "eq", "value": "Lima"}, {"attr": "city", "op": "eq", "value": "Cusco"}]}`),
		eval(`document.getElementById("rule").dispatchEvent(new Event("input"))`),
		waitText("#rule-count", "3 users match"),
		chromedp.Click(chromedp.CSS("#segment-form button[type=submit]")),
		waitText("main", "Lima customers"),
	)
	tr.step("template",
		tr.open("/templates/new"),
		chromedp.SendKeys(chromedp.CSS("#name"), "Weekend deals"),
		chromedp.SetValue(chromedp.CSS("#body1"), "Hola {first_name}, este fin de semana {city|tu ciudad} tiene ofertas. Responde STOP para no recibir más."),
		// An approved content SID: a campaign is business-initiated, outside any 24-hour window.
		chromedp.SendKeys(chromedp.CSS("#sid1"), "HX0123456789abcdef0123456789abcdef"),
		// Preview as you type, for a chosen user: a placeholder Ana has no value for is marked.
		chromedp.SendKeys(chromedp.CSS("#preview_phone"), "+51987650001"),
		waitText("#draft-text", "Hola Ana, este fin de semana Lima tiene ofertas"),
		chromedp.SendKeys(chromedp.CSS("#body1"), " {loyalty_tier}"),
		waitText("#draft-missing", "loyalty_tier"),
		waitText("#draft-source mark", "{loyalty_tier}"),
		// A second locale, and an unclosed placeholder shown at that locale's body.
		chromedp.Click(chromedp.CSS("#locale2")),
		chromedp.SendKeys(chromedp.CSS("#locale2"), "en"),
		chromedp.SendKeys(chromedp.CSS("#body2"), "Hi {first_name"),
		waitText("#body2 ~ .field-error", "unclosed"),
		eval(`(function(){var b=document.getElementById("body2"); b.value="Hi {first_name}, deals this weekend."; b.dispatchEvent(new Event("input",{bubbles:true}))})()`),
		eval(`(function(){var b=document.getElementById("body1"); b.value=b.value.replace(" {loyalty_tier}",""); b.dispatchEvent(new Event("input",{bubbles:true}))})()`),
		waitText("#draft-meta", "Rendered in"),
		chromedp.Click(chromedp.CSS("#template-form button[type=submit]")),
		waitText("h1", "Weekend deals"),
		chromedp.SendKeys(chromedp.CSS("#phone"), "+51987650001"),
		chromedp.Click(chromedp.CSS("form[action$='/preview'] button")),
		waitText(".preview", "Hola Ana, este fin de semana Lima tiene ofertas"),
	)
	tr.step("campaign",
		tr.open("/campaigns/new"),
		chromedp.SendKeys(chromedp.CSS("#name"), "Weekend deals — Lima and Cusco"),
		chromedp.SendKeys(chromedp.CSS("#topic"), "deals"),
		eval(`document.getElementById("segment_id").selectedIndex = 1`),
		chromedp.Click(chromedp.CSS("form[action='/campaigns'] button[type=submit]")),
		waitText("main", "Campaign created"),
		waitText("h1", "draft"),
	)
	tr.step("preview",
		chromedp.Click(chromedp.CSS("form[action$='/preview'] button")),
		waitText(".preview", "Dry run at"),
		waitText(".preview", "Hola Bruno"),
	)
	tr.step("launch",
		eval(`window.confirm = function () { return true }`),
		chromedp.Click(chromedp.CSS("form[action$='/launch'] button")),
		waitText("main", "Launched."),
	)
	tr.step("delivered and read",
		waitText("[data-k=delivered]", "3"),
		waitText("[data-k=read]", "3"),
		waitText("h1", "completed"),
	)
	tr.step("decision trail",
		tr.open(mustLocation(tr)),
		chromedp.Click(chromedp.CSS("a[href^='/messages/']")),
		waitText("h2", "Decision trail"),
		waitText(".trail", "message."),
	)

	inject := func(from, body, name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := w.sim.Inject(ctx, twiliosim.Inbound{From: from, Body: body, ProfileName: name})
			return err
		})
	}
	// The inbox is live: the messages appear on the open page, without a reload.
	tr.step("inbox",
		tr.open("/inbox"),
		waitText("main", "Newest first"),
		eval(`document.body.dataset.loaded = "before"`),
		inject("+51987650001", "STOP", "Ana"),
		inject("+51987650002", "¿Hasta qué hora abren el sábado?", "Bruno"),
		waitText("table", "STOP"),
		waitText("table", "¿Hasta qué hora abren el sábado?"),
		chromedp.WaitReady(chromedp.CSS(`body[data-loaded="before"]`)),
	)
	reply := "Abrimos hasta las 9 pm. ¡Te esperamos!"
	tr.step("reply",
		tr.open("/inbox/+51987650002"),
		waitText(".window", "window is open"),
		chromedp.SendKeys(chromedp.CSS("#body"), reply),
		chromedp.Click(chromedp.CSS("form.reply button")),
		waitText("main", "Reply queued"),
	)
	require.Eventually(t, func() bool {
		for _, m := range w.sim.Messages() {
			if strings.HasSuffix(m.To, "+51987650002") && m.Body == reply {
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "the reply reaches Twilio")
	tr.step("profile",
		tr.reloadUntil("/users/+51987650002", ".timeline", reply),
		waitText(".timeline", "¿Hasta qué hora abren el sábado?"),
		waitText(".timeline", "Hola Bruno"),
		waitText("#history ~ ol", "Subscribed to deals"),
	)
	tr.step("edit segment",
		tr.open("/segments"),
		chromedp.Click(chromedp.CSS(`a[href$="/edit"]`)),
		waitText("#rule-count", "3 users match"),
		chromedp.SetValue(chromedp.CSS("#description"), "Lima and Cusco, for the weekend deals"),
		chromedp.Click(chromedp.CSS("#segment-form button[type=submit]")),
		waitText("main", "Segment saved."),
		waitText("table", "for the weekend deals"),
	)
	tr.step("closed window",
		tr.open("/inbox/+51987650003"),
		waitText(".window", "never written"),
	)
	campaignPage := mustCampaignPath(tr)
	// Keyboard: on every main page each visible control takes the focus with Tab, visibly.
	for _, path := range []string{"/", "/campaigns", campaignPage, "/campaigns/new", "/users", "/users/+51987650001",
		"/inbox", "/inbox/+51987650002", "/imports/new", "/segments", "/segments/new", "/templates", "/templates/new"} {
		tr.quiet("keyboard "+path, tr.open(path), chromedp.WaitReady(chromedp.CSS("main")), keyboardReachable())
	}
	// A phone's width (375 px): nothing wider than the screen, a screenshot of each page.
	tr.quiet("phone width", chromedp.EmulateViewport(375, 812))
	for _, pg := range []struct{ name, path, want string }{
		{"phone dashboard", "/", "Recent campaigns"},
		{"phone campaign", campaignPage, "Progress"},
		{"phone inbox", "/inbox", "STOP"},
		{"phone conversation", "/inbox/+51987650002", "window"},
		{"phone segment editor", "/segments/new", "users match"},
		{"phone template editor", "/templates/new", "Preview as you type"},
	} {
		tr.step(pg.name, tr.open(pg.path), waitText("main", pg.want), fitsScreen())
	}
	tr.quiet("desktop again", chromedp.EmulateViewport(1280, 800))
}

// fitsScreen fails when the page is wider than the viewport (a sideways scroll on a phone).
func fitsScreen() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		wide, err := chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)(ctx, t)
		if err == nil && wide {
			err = fmt.Errorf("the page is wider than a phone's screen")
		}
		return err
	})
}

// quiet is a step that leaves no screenshot in the demo (checks a viewer need not watch).
func (tr *tour) quiet(name string, actions ...chromedp.Action[chromedp.Void]) {
	tr.t.Helper()
	shots, pause := tr.shots, tr.pause
	tr.shots, tr.pause = "", 0
	defer func() { tr.shots, tr.pause = shots, pause }()
	tr.step(name, actions...)
}

// mustCampaignPath is the path of the first campaign on the campaigns page.
func mustCampaignPath(tr *tour) string {
	var href string
	err := chromedp.Do(tr.ctx, tr.open("/campaigns"), chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var err error
		href, err = chromedp.Evaluate[string](`document.querySelector("main a[href^='/campaigns/c'], main td a[href^='/campaigns/']").getAttribute("href")`)(ctx, t)
		return err
	}))
	require.NoError(tr.t, err)
	return href
}

// record saves the browser's screencast frames in dir with an ffmpeg concat list (each frame
// shown until the next one arrived), for make demo-recording.
func (tr *tour) record(dir string) {
	t := tr.t
	require.NoError(t, os.MkdirAll(dir, 0o755))
	frames := chromedp.Events(tr.ctx, cdppage.ScreencastFrame)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var list strings.Builder
		var last time.Time
		n := 0
		for ev, err := range frames {
			if err != nil {
				break
			}
			now := time.Now()
			if n > 0 {
				fmt.Fprintf(&list, "duration %.3f\n", now.Sub(last).Seconds())
			}
			name := fmt.Sprintf("frame-%05d.jpg", n)
			if os.WriteFile(filepath.Join(dir, name), ev.Data, 0o644) == nil {
				fmt.Fprintf(&list, "file '%s'\n", name)
				n++
				last = now
			}
			_, _ = chromedp.Call(tr.ctx, cdppage.ScreencastFrameAck, cdppage.ScreencastFrameAckParams{SessionID: ev.SessionID})
			_ = os.WriteFile(filepath.Join(dir, "frames.txt"), []byte(list.String()+"duration 2\n"), 0o644)
		}
	}()
	q := int64(80)
	_, err := chromedp.Call(tr.ctx, cdppage.StartScreencast, cdppage.StartScreencastParams{Format: cdppage.StartScreencastFormatJpeg,
		Quality: &q, MaxWidth: 1280, MaxHeight: 800})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = chromedp.Call(tr.ctx, cdppage.StopScreencast, cdp.Empty{})
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	})
}

func mustLocation(tr *tour) string {
	loc, err := chromedp.Run(tr.ctx, chromedp.Location())
	require.NoError(tr.t, err)
	return strings.TrimPrefix(loc, tr.w.srv.URL)
}
