package logs

import "testing"

// TestFilterHideRaised: HideRaised drops only entries marked as emitted
// for a raised level, and it is part of the filter's key.
func TestFilterHideRaised(t *testing.T) {
	plain, err := Filter{}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	hide, err := Filter{HideRaised: true}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	raised := &Entry{Level: LevelDebug, Message: "cart", Attrs: map[string]string{RaisedAttr: "debug"}}
	ordinary := &Entry{Level: LevelDebug, Message: "cart"}
	if !plain.Match(raised) || !plain.Match(ordinary) || !plain.MatchAll() {
		t.Error("the zero filter must match everything")
	}
	if hide.Match(raised) || !hide.Match(ordinary) || hide.MatchAll() {
		t.Error("HideRaised must drop the raised entry only")
	}
	if plain.Key() == hide.Key() {
		t.Errorf("keys equal (%q): viewers would share messages", plain.Key())
	}
}
