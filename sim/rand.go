package sim

import (
	"math"
	"math/rand/v2"
	"sort"
)

// rng is the random source of one actor or of the world builder. Every actor
// has its own stream, derived from the seed and the actor's name, so the
// output does not depend on the order in which actors happen to run.
type rng struct {
	*rand.Rand
}

func newRNG(seed int64, name string) *rng {
	return &rng{rand.New(rand.NewPCG(uint64(seed), hashString(name)))}
}

// hashString is FNV-1a followed by a splitmix64 finaliser.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix64(h)
}

func mix64(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}

// uniform returns a float in [lo, hi).
func (r *rng) uniform(lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }

// between returns an int in [lo, hi].
func (r *rng) between(lo, hi int) int {
	if hi <= lo {
		return lo
	}
	return lo + r.IntN(hi-lo+1)
}

// chance returns true with probability p.
func (r *rng) chance(p float64) bool { return r.Float64() < p }

// exp returns an exponential variate with the given mean.
func (r *rng) exp(mean float64) float64 { return r.ExpFloat64() * mean }

// normal returns a normal variate.
func (r *rng) normal(mean, sd float64) float64 { return mean + sd*r.NormFloat64() }

// lognormal returns a log-normal variate with the given median and sigma
// (of the underlying normal).
func (r *rng) lognormal(median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}

// logUniform returns a variate whose logarithm is uniform in [log lo, log hi).
func (r *rng) logUniform(lo, hi float64) float64 {
	return math.Exp(r.uniform(math.Log(lo), math.Log(hi)))
}

// pick returns a uniformly chosen element.
func pick[T any](r *rng, xs []T) T { return xs[r.IntN(len(xs))] }

// weighted samples indices from fixed weights in O(log n).
type weighted struct {
	cum []float64
}

func newWeighted(w []float64) *weighted {
	cum := make([]float64, len(w))
	s := 0.0
	for i, x := range w {
		s += x
		cum[i] = s
	}
	return &weighted{cum: cum}
}

// zipfWeights returns n weights proportional to 1/(rank+1)^s.
func zipfWeights(n int, s float64) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 1 / math.Pow(float64(i+1), s)
	}
	return w
}

func (w *weighted) sample(r *rng) int {
	x := r.Float64() * w.cum[len(w.cum)-1]
	return sort.SearchFloat64s(w.cum, x)
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// zeekID returns an identifier shaped like Zeek's connection and file uids:
// a prefix letter and 17 base-62 characters.
func (r *rng) zeekID(prefix byte) string {
	var b [18]byte
	b[0] = prefix
	x := r.Uint64()
	y := r.Uint64()
	for i := 1; i < len(b); i++ {
		if i == 10 {
			x = y
		}
		b[i] = base62[x%62]
		x /= 62
	}
	return string(b[:])
}

// hexString returns n random lower-case hex digits.
func (r *rng) hexString(n int) string {
	const hexd = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = hexd[r.IntN(16)]
	}
	return string(b)
}

// alnum returns n random lower-case letters and digits.
func (r *rng) alnum(n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[r.IntN(len(chars))]
	}
	return string(b)
}
