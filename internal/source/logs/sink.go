package logs

// Retention keeps memory independent of the input size: every event is
// counted, but only the events correlation needs are kept, each kind up to
// a bound.

// Retention bounds.
const (
	maxKeptPerKind   = 200_000 // access 5xx, front-end resets/closes, crashes...
	maxKeptMinorKind = 20_000  // connect failures, timeouts, non-zero exits
	maxStderrPIDs    = 1024    // workers whose recent stderr lines are remembered
	maxStderrPerPID  = 3
	maxTallyURIs     = 10_000
)

// tally counts events by kind, including those not kept.
type tally struct {
	Kinds       map[Kind]int
	HTTPStatus  map[int]int
	HTTPByURI   counter
	NonzeroExit int
	Dropped     int
}

func newTally() *tally {
	return &tally{Kinds: map[Kind]int{}, HTTPStatus: map[int]int{}}
}

func (t *tally) merge(o *tally) {
	for k, v := range o.Kinds {
		t.Kinds[k] += v
	}
	for k, v := range o.HTTPStatus {
		t.HTTPStatus[k] += v
	}
	for _, c := range o.HTTPByURI.m {
		t.HTTPByURI.addCount(*c, maxTallyURIs)
	}
	t.NonzeroExit += o.NonzeroExit
	t.Dropped += o.Dropped
}

// sink receives the events of one input in file order.
type sink struct {
	events []Event
	tally  *tally
	kept   map[Kind]int
	stderr map[int][]Event
	order  []int // pids in stderr, oldest first
}

func newSink() *sink {
	return &sink{tally: newTally(), kept: map[Kind]int{}, stderr: map[int][]Event{}}
}

func (s *sink) add(ev Event) {
	t := s.tally
	t.Kinds[ev.Kind]++
	switch ev.Kind {
	case KindHTTPError:
		t.HTTPStatus[ev.Status]++
		if ev.Status >= 502 {
			t.HTTPByURI.addCount(Count{Key: ev.URI, N: 1, First: ev.Time, Last: ev.Time}, maxTallyURIs)
		}
	case KindChildExit:
		if ev.ExitCode == 0 {
			return
		}
		t.NonzeroExit++
	case KindChildStderr:
		// Kept only if the same worker dies soon after (same file, later).
		l, ok := s.stderr[ev.PID]
		if !ok {
			s.order = append(s.order, ev.PID)
			if len(s.order) > maxStderrPIDs {
				delete(s.stderr, s.order[0])
				s.order = s.order[1:]
			}
		}
		if len(l) == maxStderrPerPID {
			l = l[1:]
		}
		s.stderr[ev.PID] = append(l, ev)
		return
	case KindFastCGIStderr, KindUpstreamOther:
		return
	case KindChildSignal:
		if l, ok := s.stderr[ev.PID]; ok {
			s.events = append(s.events, l...)
			delete(s.stderr, ev.PID)
		}
	}
	limit := maxKeptPerKind
	switch ev.Kind {
	case KindConnectFailed, KindUpstreamTimeout, KindChildExit, KindMaxChildren, KindPtraceFailed:
		limit = maxKeptMinorKind
	}
	if s.kept[ev.Kind] >= limit {
		t.Dropped++
		return
	}
	s.kept[ev.Kind]++
	s.events = append(s.events, ev)
}
