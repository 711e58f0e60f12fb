package qmpconn

import "sync"

// watchers are extra readers of one event name, beside the Events channel.
type watchers struct {
	mu   sync.Mutex
	next int
	m    map[int]watcher
}

type watcher struct {
	name string
	ch   chan Event
}

// Watch returns a channel that also receives every event called name (buffered; an event
// that does not fit is dropped for this watcher only) and a function that stops watching.
// Unlike Events, any number of callers may watch, so a command that reports its result as an
// event (dump-guest-memory's DUMP_COMPLETED) can wait for it while another reader owns Events.
func (c *Conn) Watch(name string) (<-chan Event, func()) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	if c.w.m == nil {
		c.w.m = map[int]watcher{}
	}
	id := c.w.next
	c.w.next++
	ch := make(chan Event, 8)
	c.w.m[id] = watcher{name: name, ch: ch}
	return ch, func() {
		c.w.mu.Lock()
		defer c.w.mu.Unlock()
		delete(c.w.m, id)
	}
}

// notify hands e to its watchers.
func (c *Conn) notify(e Event) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	for _, w := range c.w.m {
		if w.name == e.Name {
			select {
			case w.ch <- e:
			default:
			}
		}
	}
}
