package twiliosim

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCreated: creates are counted per Herald message id and recipient; a 500 creates nothing
// and is not counted, a stalled create is; the ids created twice are listed, over HTTP too.
func TestCreated(t *testing.T) {
	t.Parallel()
	sim, base := newSim(t)
	h := newHerald(t)
	const other = "whatsapp:+14155550199"
	require.NoError(t, sim.QueueFaults(FaultNone, FaultServerError, FaultNone, FaultNone))
	create(t, base, textForm(testTo, h.callbackURL("m-1", 1)))
	res := call(t, http.MethodPost, messagesURL(base), textForm(testTo, h.callbackURL("m-2", 1)))
	require.Equal(t, http.StatusInternalServerError, res.Status)
	create(t, base, textForm(testTo, h.callbackURL("m-2", 2)))
	create(t, base, textForm(other, h.callbackURL("m-1", 2)))
	create(t, base, textForm(other, ""))
	waitIdle(t, sim)

	want := CreateCounts{Total: 4, ByMessageID: map[string]int{"m-1": 2, "m-2": 1, "": 1},
		ByTo: map[string]int{testTo: 2, other: 2}, Duplicates: []string{"m-1"}}
	assert.Equal(t, want, sim.Created())

	resp, err := http.Get(base + "/sim/creates")
	require.NoError(t, err)
	defer resp.Body.Close()
	var got CreateCounts
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	assert.Equal(t, want, got)
}
