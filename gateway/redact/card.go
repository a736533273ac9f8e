package redact

// Card numbers are found by a byte scanner rather than a regular expression:
// digit runs are everywhere in logs (timestamps, ids, durations) and the
// equivalent RE2 pattern costs tens of microseconds per line in Go.

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isWordByte(c byte) bool {
	return isDigit(c) || 'A' <= c&^0x20 && c&^0x20 <= 'Z' || c == '_'
}

// findCards returns spans of 13-19 digits, optionally grouped by single
// spaces or dashes, not touching a letter, digit or underscore, that pass
// cardLike. In a longer grouped run (a card followed by a CVV, say) it tries
// the longest valid group-aligned window from the left.
func findCards(s string) [][]int {
	var out [][]int
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		start := i
		digits := 0
		j := i
		for j < len(s) {
			if isDigit(s[j]) {
				digits++
				j++
				continue
			}
			if (s[j] == ' ' || s[j] == '-') && j+1 < len(s) && isDigit(s[j+1]) {
				j++
				continue
			}
			break
		}
		i = j
		if digits < 13 {
			continue
		}
		leftOK := start == 0 || !isWordByte(s[start-1])
		rightOK := j == len(s) || !isWordByte(s[j])
		run := s[start:j]
		if leftOK && rightOK && digits <= 19 && cardLike(run) {
			out = append(out, []int{start, j})
			continue
		}
		if len(run) > digits { // grouped: try a shorter group-aligned window
			out = appendCardWindows(out, run, start, leftOK, rightOK)
		}
	}
	return out
}

// appendCardWindows handles a grouped run that is not a card as a whole.
// Every group-aligned window of 13-19 digits that is card-like is a
// candidate; overlapping candidates are merged into one span, so that no
// digits of a card survive because a neighbouring window also validated.
// A window touching an end of the run must respect that end's boundary. The
// cost stays linear in the run length (at most 19 windows per group).
func appendCardWindows(out [][]int, run string, base int, leftOK, rightOK bool) [][]int {
	// starts[k], ends[k] and ndig[k] describe digit group k.
	var starts, ends, ndig []int
	for k := 0; k < len(run); {
		g := k
		for k < len(run) && isDigit(run[k]) {
			k++
		}
		starts, ends, ndig = append(starts, g), append(ends, k), append(ndig, k-g)
		k++ // separator
	}
	last := len(starts) - 1
	spanStart, spanEnd := -1, -1
	for a := 0; a <= last; a++ {
		n := 0
		for b := a; b <= last && n+ndig[b] <= 19; b++ {
			n += ndig[b]
			if n < 13 || (a == 0 && !leftOK) || (b == last && !rightOK) || !cardLike(run[starts[a]:ends[b]]) {
				continue
			}
			switch {
			case spanStart >= 0 && starts[a] <= spanEnd:
				spanEnd = max(spanEnd, ends[b])
			default:
				if spanStart >= 0 {
					out = append(out, []int{base + spanStart, base + spanEnd})
				}
				spanStart, spanEnd = starts[a], ends[b]
			}
		}
	}
	if spanStart >= 0 {
		out = append(out, []int{base + spanStart, base + spanEnd})
	}
	return out
}

// cardLike reports whether s (digits with separators) has 13-19 digits, a
// card-issuer first digit (2-6: Mastercard, Amex/Diners, Visa, Mastercard,
// Discover) and a valid Luhn check digit. The issuer check keeps epoch
// timestamps and most ids (leading 1) from being taken for cards.
func cardLike(s string) bool {
	n := 0
	sum := 0
	first := byte(0)
	// Luhn from the right.
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if !isDigit(c) {
			if c != ' ' && c != '-' {
				return false
			}
			continue
		}
		d := int(c - '0')
		if n%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		n++
		first = c
	}
	return n >= 13 && n <= 19 && first >= '2' && first <= '6' && sum%10 == 0
}

// maskCard replaces every digit but the last four with '*', keeping
// separators: "4242 4242 4242 4242" -> "**** **** **** 4242".
func maskCard(s string) string {
	b := []byte(s)
	keep := 4
	for i := len(b) - 1; i >= 0; i-- {
		if !isDigit(b[i]) {
			continue
		}
		if keep > 0 {
			keep--
			continue
		}
		b[i] = '*'
	}
	return string(b)
}

// cardSpan validates a card-number candidate: s as a whole is what
// findCards would mask (a Luhn-valid card, or merged overlapping cards).
func cardSpan(s string) bool {
	f := findCards(s)
	return len(f) == 1 && f[0][0] == 0 && f[0][1] == len(s)
}
