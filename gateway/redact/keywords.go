package redact

import "fmt"

// maxKeywords bounds the distinct keywords of a rule set; kwBits holds one
// bit per keyword.
const maxKeywords = 256

// kwBits is a fixed-size bit set of keyword indexes, a value so that a scan
// allocates nothing.
type kwBits [maxKeywords / 64]uint64

func (b *kwBits) set(i int)    { b[i/64] |= 1 << (i % 64) }
func (b *kwBits) or(o *kwBits) { b[0] |= o[0]; b[1] |= o[1]; b[2] |= o[2]; b[3] |= o[3] }
func (b *kwBits) intersects(o *kwBits) bool {
	return b[0]&o[0] != 0 || b[1]&o[1] != 0 || b[2]&o[2] != 0 || b[3]&o[3] != 0
}

// keywordIndex finds, in one pass over a text, which of a set of keywords
// occur in it, ASCII case-insensitively. It is an Aho-Corasick automaton
// compiled to a dense DFA over byte classes: every byte costs one table
// lookup, so the prefilter stays cheap however many rules there are.
type keywordIndex struct {
	class  [256]uint8 // byte -> class; 0 is "no keyword contains this byte"
	nclass int
	// delta[row+class] is the next state's row (state*nclass), with
	// outBit set when that state completes a keyword.
	delta  []uint32
	hasOut []bool   // state completes at least one keyword
	out    []kwBits // keywords completed on reaching the state
	ids    map[string]int
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// newKeywordIndex builds the automaton; ids maps each lowercased keyword to
// its bit.
func newKeywordIndex(keywords []string) (*keywordIndex, error) {
	k := &keywordIndex{ids: make(map[string]int)}
	var words []string
	for _, w := range keywords {
		lw := make([]byte, len(w))
		for i := range len(w) {
			lw[i] = lowerASCII(w[i])
		}
		s := string(lw)
		if s == "" {
			return nil, fmt.Errorf("empty keyword")
		}
		if _, ok := k.ids[s]; ok {
			continue
		}
		if len(words) == maxKeywords {
			return nil, fmt.Errorf("more than %d distinct keywords", maxKeywords)
		}
		k.ids[s] = len(words)
		words = append(words, s)
	}
	k.nclass = 1
	for _, w := range words {
		for i := range len(w) {
			c := w[i]
			if k.class[c] != 0 {
				continue
			}
			k.class[c] = uint8(k.nclass)
			if 'a' <= c && c <= 'z' {
				k.class[c-'a'+'A'] = uint8(k.nclass)
			}
			k.nclass++
			if k.nclass > 255 {
				return nil, fmt.Errorf("too many distinct keyword bytes")
			}
		}
	}
	// Trie (goto function), -1 for a missing edge.
	type node struct {
		next []int32
		out  kwBits
		has  bool
	}
	newNode := func() node {
		n := node{next: make([]int32, k.nclass)}
		for i := range n.next {
			n.next[i] = -1
		}
		return n
	}
	nodes := []node{newNode()}
	for id, w := range words {
		s := 0
		for i := range len(w) {
			c := k.class[w[i]]
			if nodes[s].next[c] < 0 {
				nodes[s].next[c] = int32(len(nodes))
				nodes = append(nodes, newNode())
			}
			s = int(nodes[s].next[c])
		}
		nodes[s].out.set(id)
		nodes[s].has = true
	}
	if len(nodes)*k.nclass >= outBit {
		return nil, fmt.Errorf("keywords too long")
	}
	// Breadth-first: failure links, output closure and the dense DFA.
	next := make([]int, len(nodes)*k.nclass)
	k.out = make([]kwBits, len(nodes))
	k.hasOut = make([]bool, len(nodes))
	fail := make([]int, len(nodes))
	queue := []int{0}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		k.out[s] = nodes[s].out
		k.hasOut[s] = nodes[s].has
		if s != 0 {
			k.out[s].or(&k.out[fail[s]])
			k.hasOut[s] = k.hasOut[s] || k.hasOut[fail[s]]
		}
		for c := 0; c < k.nclass; c++ {
			t := nodes[s].next[c]
			if t < 0 {
				if s != 0 {
					next[s*k.nclass+c] = next[fail[s]*k.nclass+c]
				}
				continue
			}
			if s != 0 {
				fail[t] = next[fail[s]*k.nclass+c]
			}
			next[s*k.nclass+c] = int(t)
			queue = append(queue, int(t))
		}
	}
	k.delta = make([]uint32, len(next))
	for i, t := range next {
		k.delta[i] = uint32(t * k.nclass)
		if k.hasOut[t] {
			k.delta[i] |= outBit
		}
	}
	return k, nil
}

// bits returns the bit set for the given keywords (already indexed).
func (k *keywordIndex) bits(keywords []string) kwBits {
	var b kwBits
	for _, w := range keywords {
		lw := make([]byte, len(w))
		for i := range len(w) {
			lw[i] = lowerASCII(w[i])
		}
		if id, ok := k.ids[string(lw)]; ok {
			b.set(id)
		}
	}
	return b
}

const outBit = 1 << 31

// scan reports which keywords occur in s.
func (k *keywordIndex) scan(s string) (found kwBits, any bool) {
	var row uint32
	delta, class := k.delta, &k.class
	for i := 0; i < len(s); i++ {
		row = delta[row+uint32(class[s[i]])]
		if row&outBit != 0 {
			row &^= outBit
			found.or(&k.out[row/uint32(k.nclass)])
			any = true
		}
	}
	return found, any
}
