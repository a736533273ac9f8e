package alert

import "regexp/syntax"

// requiredLiteral returns the longest literal substring that every match of
// the RE2 expression contains, or "" when there is none known (alternations,
// case folding, classes). The evaluator runs a rule's regex only on lines
// holding its literal.
func requiredLiteral(expr string) string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return ""
	}
	return longest(re.Simplify())
}

func longest(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return ""
		}
		return string(re.Rune)
	case syntax.OpCapture:
		return longest(re.Sub[0])
	case syntax.OpPlus:
		return longest(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return longest(re.Sub[0])
		}
	case syntax.OpConcat:
		best := ""
		for _, s := range re.Sub {
			if l := longest(s); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}

// scanner finds, in one pass over a message, which of a set of literals it
// contains: an Aho-Corasick automaton compiled to a dense byte DFA.
type scanner struct {
	next []int32 // state*256 + byte -> state
	out  [][]int // state -> literal indexes ending here (failure outputs merged)
	n    int     // number of literals
}

func newScanner(literals []string) *scanner {
	type node struct {
		child map[byte]int32
		out   []int
	}
	nodes := []node{{child: map[byte]int32{}}}
	for i, lit := range literals {
		s := int32(0)
		for j := 0; j < len(lit); j++ {
			c := lit[j]
			nx, ok := nodes[s].child[c]
			if !ok {
				nodes = append(nodes, node{child: map[byte]int32{}})
				nx = int32(len(nodes) - 1)
				nodes[s].child[c] = nx
			}
			s = nx
		}
		nodes[s].out = append(nodes[s].out, i)
	}
	sc := &scanner{next: make([]int32, len(nodes)*256), out: make([][]int, len(nodes)), n: len(literals)}
	fail := make([]int32, len(nodes))
	queue := []int32{}
	for c := range 256 {
		if nx, ok := nodes[0].child[byte(c)]; ok {
			sc.next[c] = nx
			queue = append(queue, nx)
		}
	}
	sc.out[0] = nodes[0].out
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		sc.out[s] = append(append([]int(nil), nodes[s].out...), sc.out[fail[s]]...)
		for c := range 256 {
			if nx, ok := nodes[s].child[byte(c)]; ok {
				fail[nx] = sc.next[int(fail[s])*256+c]
				sc.next[int(s)*256+c] = nx
				queue = append(queue, nx)
			} else {
				sc.next[int(s)*256+c] = sc.next[int(fail[s])*256+c]
			}
		}
	}
	return sc
}

// scan sets bit i of hit for each literal i found in text and reports
// whether any was.
func (sc *scanner) scan(text string, hit []uint64) bool {
	s := int32(0)
	next := sc.next
	found := false
	for i := 0; i < len(text); i++ {
		s = next[int(s)<<8|int(text[i])]
		if o := sc.out[s]; o != nil {
			for _, k := range o {
				hit[k>>6] |= 1 << (k & 63)
			}
			found = true
		}
	}
	return found
}
