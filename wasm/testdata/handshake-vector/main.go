// Command handshake-vector writes ../handshake-vector.json: a full WireGuard
// handshake transcript (initiation, response, transport keys) computed with
// github.com/flynn/noise, a Noise implementation that shares no code with the
// Rust crate, so that wasm/src/noise_vectors.rs can check ours against it.
//
// WireGuard's handshake is Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s with the
// prologue "WireGuard v1 zx2c4 Jason@zx2c4.com" (whitepaper §5.4). The Noise
// messages are WireGuard's message fields without the header and the macs:
//
//	initiation (148) = type 1, 3 zero bytes, sender index (LE),
//	                   noise msg 1 = e (32) ‖ enc(s) (48) ‖ enc(timestamp) (28),
//	                   mac1 (16), mac2 (16)
//	response   (92)  = type 2, 3 zero bytes, sender index (LE), receiver index (LE),
//	                   noise msg 2 = e (32) ‖ enc(empty) (16),
//	                   mac1 (16), mac2 (16)
//
// mac1 = keyed BLAKE2s-128 with key BLAKE2s-256("mac1----" ‖ receiver's static
// public key) over the message up to mac1; mac2 is zero (no cookie).
//
// Rerun with: cd wasm/testdata/handshake-vector && go run .
package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/flynn/noise"
	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

const (
	prologue        = "WireGuard v1 zx2c4 Jason@zx2c4.com"
	initiatorIndex  = uint32(0x1a2b3c4d)
	responderIndex  = uint32(0x99887766)
	timestampUnixMs = uint64(1_700_000_000_123)
	out             = "../handshake-vector.json"
)

// fixed derives 32 deterministic, unclamped bytes from a label, so the vector
// also checks that both X25519 implementations clamp scalars the same way.
func fixed(label string) []byte {
	s := blake2s.Sum256([]byte("trellis handshake vector: " + label))
	return s[:]
}

func public(private []byte) []byte {
	p, err := curve25519.X25519(private, curve25519.Basepoint)
	check(err)
	return p
}

// tai64n written from its definition (TAI64 label 2^62 + 10 leap seconds),
// independently of the Rust crate.
func tai64n(unixMs uint64) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b[:8], 0x400000000000000a+unixMs/1000)
	binary.BigEndian.PutUint32(b[8:], uint32((unixMs%1000)*1_000_000))
	return b
}

func mac1(receiverPublic, msg []byte) []byte {
	key := blake2s.Sum256(append([]byte("mac1----"), receiverPublic...))
	m, err := blake2s.New128(key[:])
	check(err)
	m.Write(msg)
	return m.Sum(nil)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func must(ok bool, what string) {
	if !ok {
		log.Fatalf("self-check failed: %s", what)
	}
}

// key extracts a CipherState's raw key and cross-checks it: a known plaintext
// sealed by flynn's CipherState at nonce 0 must equal the same plaintext sealed
// with x/crypto's ChaCha20-Poly1305 under that key (nonce = 4 zero bytes ‖ LE 0).
func key(cs *noise.CipherState, plaintext []byte) ([]byte, []byte) {
	k := cs.UnsafeKey()
	ct, err := cs.Encrypt(nil, nil, plaintext)
	check(err)
	aead, err := chacha20poly1305.New(k[:])
	check(err)
	want := aead.Seal(nil, make([]byte, 12), plaintext, nil)
	must(bytes.Equal(ct, want), "CipherState key matches its ciphertext")
	return k[:], ct
}

func main() {
	suite := noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)
	iStatic, rStatic := fixed("initiator static"), fixed("responder static")
	iEph, rEph := fixed("initiator ephemeral"), fixed("responder ephemeral")
	psk := fixed("preshared key")
	iPub, rPub := public(iStatic), public(rStatic)
	ts := tai64n(timestampUnixMs)

	initiator, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:           suite,
		Random:                bytes.NewReader(iEph), // the one ephemeral it generates
		Pattern:               noise.HandshakeIK,
		Initiator:             true,
		Prologue:              []byte(prologue),
		PresharedKey:          psk,
		PresharedKeyPlacement: 2,
		StaticKeypair:         noise.DHKey{Private: iStatic, Public: iPub},
		PeerStatic:            rPub,
	})
	check(err)
	responder, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:           suite,
		Random:                bytes.NewReader(rEph),
		Pattern:               noise.HandshakeIK,
		Initiator:             false,
		Prologue:              []byte(prologue),
		PresharedKey:          psk,
		PresharedKeyPlacement: 2,
		StaticKeypair:         noise.DHKey{Private: rStatic, Public: rPub},
	})
	check(err)

	// Message 1: -> e, es, s, ss with the timestamp as payload.
	msg1, _, _, err := initiator.WriteMessage(nil, ts)
	check(err)
	must(len(msg1) == 32+48+28, "noise message 1 is 108 bytes")
	must(bytes.Equal(msg1[:32], public(iEph)), "message 1 carries the initiator ephemeral")
	got, _, _, err := responder.ReadMessage(nil, msg1)
	check(err)
	must(bytes.Equal(got, ts), "responder decrypts the timestamp")
	must(bytes.Equal(responder.PeerStatic(), iPub), "responder learns the initiator's static key")

	// Message 2: <- e, ee, se, psk with an empty payload.
	msg2, rA, rB, err := responder.WriteMessage(nil, nil)
	check(err)
	must(len(msg2) == 32+16, "noise message 2 is 48 bytes")
	must(bytes.Equal(msg2[:32], public(rEph)), "message 2 carries the responder ephemeral")
	got, iA, iB, err := initiator.ReadMessage(nil, msg2)
	check(err)
	must(len(got) == 0, "empty response payload")
	must(subtle.ConstantTimeCompare(initiator.ChannelBinding(), responder.ChannelBinding()) == 1,
		"both sides end with the same handshake hash")

	// WireGuard framing around the Noise messages.
	initiation := make([]byte, 148)
	initiation[0] = 1
	binary.LittleEndian.PutUint32(initiation[4:8], initiatorIndex)
	copy(initiation[8:116], msg1)
	copy(initiation[116:132], mac1(rPub, initiation[:116]))

	response := make([]byte, 92)
	response[0] = 2
	binary.LittleEndian.PutUint32(response[4:8], responderIndex)
	binary.LittleEndian.PutUint32(response[8:12], initiatorIndex)
	copy(response[12:60], msg2)
	copy(response[60:76], mac1(iPub, response[:60]))

	// Split: the first CipherState carries initiator -> responder traffic, the
	// second responder -> initiator, on both sides.
	plaintext := []byte("trellis transport vector")
	iSend, ct0 := key(iA, plaintext)
	iRecv, _ := key(iB, plaintext)
	rRecv, _ := key(rA, plaintext)
	rSend, _ := key(rB, plaintext)
	must(bytes.Equal(iSend, rRecv) && bytes.Equal(iRecv, rSend), "both sides agree on transport keys")
	must(!bytes.Equal(iSend, iRecv), "the two directions have different keys")

	h := hex.EncodeToString
	vector := []struct {
		k string
		v any
	}{
		{"description", "WireGuard handshake (Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s) generated by github.com/flynn/noise; see testdata/handshake-vector/main.go"},
		{"initiator_static_private", h(iStatic)},
		{"initiator_static_public", h(iPub)},
		{"responder_static_private", h(rStatic)},
		{"responder_static_public", h(rPub)},
		{"initiator_ephemeral_private", h(iEph)},
		{"initiator_ephemeral_public", h(public(iEph))},
		{"responder_ephemeral_private", h(rEph)},
		{"responder_ephemeral_public", h(public(rEph))},
		{"psk", h(psk)},
		{"initiator_index", initiatorIndex},
		{"responder_index", responderIndex},
		{"timestamp_unix_ms", timestampUnixMs},
		{"timestamp", h(ts)},
		{"initiation", h(initiation)},
		{"response", h(response)},
		{"initiator_send_key", h(iSend)},
		{"initiator_recv_key", h(iRecv)},
		{"responder_send_key", h(rSend)},
		{"responder_recv_key", h(rRecv)},
		{"transport_plaintext", h(plaintext)},
		{"initiator_transport_counter0", h(ct0)},
	}
	// A flat object, one field a line, in this order (encoding/json sorts maps).
	var buf bytes.Buffer
	buf.WriteString("{\n")
	for i, f := range vector {
		v, err := json.Marshal(f.v)
		check(err)
		sep := ","
		if i == len(vector)-1 {
			sep = ""
		}
		fmt.Fprintf(&buf, "  %q: %s%s\n", f.k, v, sep)
	}
	buf.WriteString("}\n")
	check(os.WriteFile(out, buf.Bytes(), 0o644))
	fmt.Fprintf(os.Stderr, "wrote %s\n", out)
}
