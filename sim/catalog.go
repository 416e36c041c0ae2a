package sim

import (
	"fmt"
	"net/netip"
	"strings"
)

// provider is an address space that domains resolve into: a CDN, a cloud or
// a hosting company. The prefixes are real public allocations of that kind
// of operator; the addresses inside them are made up.
type provider struct {
	name     string
	prefixes []netip.Prefix
	// addrs is how many distinct addresses one domain resolves to when
	// hosted there (a CDN rotates through several).
	addrs int
}

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

var (
	provGoogle     = &provider{"google", mustPrefixes("142.250.0.0/15", "172.217.0.0/16", "216.58.192.0/19"), 3}
	provCloudflare = &provider{"cloudflare", mustPrefixes("104.16.0.0/13", "172.64.0.0/13"), 2}
	provAkamai     = &provider{"akamai", mustPrefixes("23.32.0.0/11", "2.16.0.0/13", "184.24.0.0/13"), 4}
	provAWS        = &provider{"aws", mustPrefixes("3.64.0.0/12", "52.28.0.0/16", "18.156.0.0/14"), 2}
	provCloudFront = &provider{"cloudfront", mustPrefixes("13.32.0.0/15", "52.84.0.0/15", "54.192.0.0/16"), 4}
	provMicrosoft  = &provider{"microsoft", mustPrefixes("13.107.0.0/16", "20.40.0.0/13", "40.64.0.0/10", "52.96.0.0/12"), 3}
	provFastly     = &provider{"fastly", mustPrefixes("151.101.0.0/16", "199.232.0.0/16"), 2}
	provHosting    = &provider{"hosting", mustPrefixes("5.9.0.0/16", "46.4.0.0/16", "78.46.0.0/15", "88.99.0.0/16", "94.130.0.0/16", "136.243.0.0/16", "144.76.0.0/16", "176.9.0.0/16", "195.201.0.0/16", "212.227.0.0/16"), 1}
	provVPS        = &provider{"vps", mustPrefixes("45.32.0.0/14", "45.76.0.0/15", "104.238.128.0/18", "139.59.0.0/16", "159.65.0.0/16", "165.22.0.0/16", "185.141.24.0/22", "193.38.54.0/23", "194.87.0.0/16", "91.215.152.0/22"), 1}
	provApple      = &provider{"apple", mustPrefixes("17.0.0.0/8"), 2}
	provESET       = &provider{"eset", mustPrefixes("91.228.164.0/22", "185.94.156.0/22"), 2}
	provDropbox    = &provider{"dropbox", mustPrefixes("162.125.0.0/16"), 2}
)

// addrFor returns the k-th address (mod the provider's count) that domain
// resolves to. It is a pure function of its arguments.
func (p *provider) addrFor(domain string, k int) string {
	if p.addrs > 0 {
		k %= p.addrs
	}
	h := hashString(fmt.Sprintf("%s#%d", domain, k))
	pfx := p.prefixes[h%uint64(len(p.prefixes))]
	return hostInPrefix(pfx, h>>8)
}

// hostInPrefix picks an address inside pfx from x, avoiding .0 and .255.
func hostInPrefix(pfx netip.Prefix, x uint64) string {
	a := pfx.Addr().As4()
	base := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	size := uint32(1) << (32 - pfx.Bits())
	for i := uint64(0); ; i++ {
		v := base + uint32((x+i*7919)%uint64(size))
		if b := byte(v); b != 0 && b != 255 {
			return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), b}).String()
		}
	}
}

// Well-known destinations at the top of the browsing popularity ranking,
// with the provider that serves them.
var topSites = []struct {
	host string
	prov *provider
}{
	{"www.google.com", provGoogle}, {"outlook.office.com", provMicrosoft}, {"www.youtube.com", provGoogle},
	{"teams.microsoft.com", provMicrosoft}, {"www.linkedin.com", provMicrosoft}, {"github.com", provHosting},
	{"stackoverflow.com", provCloudflare}, {"en.wikipedia.org", provHosting}, {"www.bing.com", provMicrosoft},
	{"docs.google.com", provGoogle}, {"www.amazon.com", provCloudFront}, {"www.reddit.com", provFastly},
	{"www.bbc.com", provFastly}, {"news.ycombinator.com", provHosting}, {"www.nytimes.com", provFastly},
	{"mail.google.com", provGoogle}, {"www.office.com", provMicrosoft}, {"app.slack.com", provCloudFront},
	{"www.atlassian.com", provCloudFront}, {"portal.azure.com", provMicrosoft}, {"console.aws.amazon.com", provAWS},
	{"www.theguardian.com", provFastly}, {"www.dropbox.com", provDropbox}, {"www.salesforce.com", provAkamai},
	{"www.zoom.us", provAWS}, {"www.paypal.com", provAkamai}, {"www.apple.com", provAkamai},
	{"www.spiegel.de", provAkamai}, {"www.reuters.com", provAkamai}, {"medium.com", provCloudflare},
	{"www.imdb.com", provCloudFront}, {"www.booking.com", provAkamai}, {"translate.google.com", provGoogle},
	{"www.ebay.com", provAkamai}, {"weather.com", provAkamai}, {"www.msn.com", provMicrosoft},
	{"www.instagram.com", provHosting}, {"twitter.com", provHosting}, {"www.facebook.com", provHosting},
	{"www.npmjs.com", provCloudflare}, {"pkg.go.dev", provGoogle}, {"docs.python.org", provFastly},
	{"www.cnn.com", provFastly}, {"www.w3schools.com", provCloudflare}, {"developer.mozilla.org", provCloudFront},
}

// Third-party hosts that pages pull resources from, in popularity order:
// analytics, fonts, script CDNs, ads, social widgets.
var thirdParties = []struct {
	host string
	prov *provider
}{
	{"www.googletagmanager.com", provGoogle}, {"www.google-analytics.com", provGoogle}, {"fonts.googleapis.com", provGoogle},
	{"fonts.gstatic.com", provGoogle}, {"ajax.googleapis.com", provGoogle}, {"cdnjs.cloudflare.com", provCloudflare},
	{"cdn.jsdelivr.net", provFastly}, {"securepubads.g.doubleclick.net", provGoogle}, {"static.doubleclick.net", provGoogle},
	{"connect.facebook.net", provAkamai}, {"code.jquery.com", provFastly}, {"use.typekit.net", provAkamai},
	{"bat.bing.com", provMicrosoft}, {"platform.twitter.com", provFastly}, {"unpkg.com", provCloudflare},
	{"js.stripe.com", provCloudFront}, {"cdn.cookielaw.org", provCloudflare}, {"static.cloudflareinsights.com", provCloudflare},
	{"www.gstatic.com", provGoogle}, {"maps.googleapis.com", provGoogle}, {"i.ytimg.com", provGoogle},
	{"snap.licdn.com", provAkamai}, {"cdn.segment.com", provCloudFront}, {"js.hs-scripts.com", provCloudflare},
	{"cdn.optimizely.com", provAkamai}, {"assets.adobedtm.com", provAkamai}, {"s.yimg.com", provAkamai},
	{"cdn.shopify.com", provCloudflare}, {"static.hotjar.com", provCloudFront}, {"cdn.ampproject.org", provGoogle},
}

// Syllables for made-up site names.
var (
	nameParts = []string{
		"news", "daily", "tech", "cloud", "data", "shop", "market", "travel", "home", "garden",
		"sport", "city", "media", "press", "world", "info", "net", "web", "smart", "open",
		"green", "blue", "north", "south", "east", "west", "metro", "local", "global", "prime",
		"bright", "rapid", "alpha", "nova", "terra", "astro", "pixel", "byte", "code", "dev",
		"learn", "study", "health", "care", "food", "cook", "auto", "motor", "bike", "run",
		"photo", "film", "music", "radio", "game", "play", "book", "read", "write", "blog",
		"forum", "hub", "lab", "works", "zone", "point", "base", "line", "link", "port",
	}
	siteTLDs = []string{".com", ".com", ".com", ".net", ".org", ".io", ".de", ".co.uk", ".fr", ".nl", ".eu", ".info"}
)

// madeUpName returns a plausible registered domain such as "dailymetro.net".
func madeUpName(r *rng) string {
	a := pick(r, nameParts)
	b := pick(r, nameParts)
	for b == a {
		b = pick(r, nameParts)
	}
	sep := ""
	if r.chance(0.2) {
		sep = "-"
	}
	return a + sep + b + pick(r, siteTLDs)
}

// User agents of the simulated clients.
var (
	uaWindowsBrowsers = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.0.0",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 Firefox/123.0",
	}
	uaMacBrowsers = []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Safari/605.1.15",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
	}
	uaLinuxBrowsers = []string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
	}
	// Implant user agents: stale browser strings as malware ships them.
	uaImplants = []string{
		"Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; Trident/4.0; SLCC2; .NET CLR 2.0.50727; .NET CLR 3.5.30729; .NET CLR 3.0.30729; Media Center PC 6.0)",
		"Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; WOW64; Trident/5.0)",
		"Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/96.0.4664.110 Safari/537.36",
		"Microsoft-CryptoAPI/10.0",
	}
)

// TLS parameters, with relative frequencies.
var (
	tls13Ciphers = []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
	tls12Ciphers = []string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"}
	issuers      = []string{
		"CN=R3,O=Let's Encrypt,C=US",
		"CN=GTS CA 1C3,O=Google Trust Services LLC,C=US",
		"CN=DigiCert TLS RSA SHA256 2020 CA1,O=DigiCert Inc,C=US",
		"CN=Microsoft Azure TLS Issuing CA 01,O=Microsoft Corporation,C=US",
		"CN=Amazon RSA 2048 M01,O=Amazon,C=US",
		"CN=Sectigo RSA Domain Validation Secure Server CA,O=Sectigo Limited,L=Salford,ST=Greater Manchester,C=GB",
		"CN=Cloudflare Inc ECC CA-3,O=Cloudflare Inc,C=US",
	}
)

// registered returns the registered part of a host name, roughly (the last
// two labels, three for co.uk).
func registered(host string) string {
	parts := strings.Split(host, ".")
	n := 2
	if len(parts) >= 3 && parts[len(parts)-2] == "co" {
		n = 3
	}
	if len(parts) <= n {
		return host
	}
	return strings.Join(parts[len(parts)-n:], ".")
}
