package logs

import (
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// TestSlowViewerDropsAndIsClosed fills a viewer's queue: the overflow is
// dropped and reported by one "dropped" message with the exact count and
// seq range as soon as there is room, and a viewer that stays full for
// SlowTimeout is ended with ErrSlow. Other viewers are unaffected.
func TestSlowViewerDropsAndIsClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := NewHub(HubConfig{QueueSize: 2, SlowTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		slow, _ := h.Subscribe(testStream, SubscribeOptions{})
		fast, _ := h.Subscribe(testStream, SubscribeOptions{})
		var fastGot []int64
		go func() {
			for m := range fast.Messages() {
				fastGot = append(fastGot, seqRange(m.FirstSeq, m.LastSeq)...)
			}
		}()

		publish(t, h, makeEntries("a", 1)) // seq 1: taken by the pump, which waits for the reader
		synctest.Wait()
		publish(t, h, makeEntries("b", 1)) // seq 2: queued
		publish(t, h, makeEntries("c", 1)) // seq 3: queued, queue now full
		publish(t, h, makeEntries("d", 3)) // seqs 4..6: dropped
		publish(t, h, makeEntries("e", 2)) // seqs 7..8: dropped
		synctest.Wait()
		if got := slow.Stats().Dropped; got != 5 {
			t.Fatalf("Dropped = %d, want 5", got)
		}

		time.Sleep(5 * time.Second) // full, but not for SlowTimeout yet
		var got []wireMessage
		for range 4 {
			got = append(got, decode(t, recv(t, slow)))
		}
		if got[0].Type != TypeEntries || got[1].Type != TypeEntries || got[2].Type != TypeEntries {
			t.Fatalf("first three messages are %s, %s, %s; want entries", got[0].Type, got[1].Type, got[2].Type)
		}
		want := wireMessage{Type: TypeDropped, Count: 5, FromSeq: 4, ToSeq: 8, Reason: "slow_client"}
		if got[3].Type != want.Type || got[3].Count != want.Count || got[3].FromSeq != want.FromSeq ||
			got[3].ToSeq != want.ToSeq || got[3].Reason != want.Reason {
			t.Errorf("drop report = %+v, want %+v", got[3], want)
		}
		publish(t, h, makeEntries("f", 1)) // seq 9: the viewer has room again
		if w := decode(t, recv(t, slow)); w.Entries[0].Seq != 9 {
			t.Errorf("after the drop report got seq %d, want 9", w.Entries[0].Seq)
		}

		// Now stop reading: the queue fills and stays full.
		for range 4 {
			publish(t, h, makeEntries("g", 1)) // seqs 10..13; 13 is dropped
			synctest.Wait()
		}
		synctest.Wait()
		time.Sleep(10*time.Second - time.Nanosecond)
		synctest.Wait()
		select {
		case <-slow.Done():
			t.Fatal("viewer ended before SlowTimeout")
		default:
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		select {
		case <-slow.Done():
		default:
			t.Fatal("viewer still running after SlowTimeout")
		}
		if !errors.Is(slow.Err(), ErrSlow) {
			t.Errorf("Err() = %v, want ErrSlow", slow.Err())
		}
		if _, ok := <-slow.Messages(); ok {
			t.Error("Messages() still open after ErrSlow")
		}
		if got := slow.Stats().Dropped; got != 6 {
			t.Errorf("Dropped = %d, want 6", got)
		}
		if n := h.Streams()[0].Viewers; n != 1 {
			t.Errorf("Viewers = %d after slow close, want 1", n)
		}
		h.Close()
		if want := seqRange(1, 13); !slices.Equal(fastGot, want) {
			t.Errorf("fast viewer got %v, want %v", fastGot, want)
		}
	})
}

// TestSlowViewerThatCatchesUpStays checks that the slow timer restarts
// whenever the viewer makes room.
func TestSlowViewerThatCatchesUpStays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := NewHub(HubConfig{QueueSize: 1, SlowTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		v, _ := h.Subscribe(testStream, SubscribeOptions{})
		for range 5 {
			for range 3 {
				publish(t, h, makeEntries("x", 1))
				synctest.Wait()
			}
			time.Sleep(6 * time.Second)
			drain(v) // two entries messages and the drop report

		}
		select {
		case <-v.Done():
			t.Fatalf("viewer ended (%v) although it never stayed full for SlowTimeout", v.Err())
		default:
		}
		if got := v.Stats().Dropped; got != 5 {
			t.Errorf("Dropped = %d, want 5", got)
		}
	})
}

// drain reads every message the viewer has ready (inside a bubble).
func drain(v *Viewer) (n int) {
	for {
		synctest.Wait()
		select {
		case <-v.Messages():
			n++
		default:
			return n
		}
	}
}
