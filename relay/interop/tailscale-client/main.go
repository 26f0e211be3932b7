// Checks a DERP server with Tailscale's own client, for
// relay/src/tailscale-client.test.ts: packets of several sizes, up to 64 KiB,
// from A to B arrive whole (over WebSocket with TS_DEBUG_DERP_WS_CLIENT=true
// and -tags ts_debug_websockets, else over Upgrade: DERP). B is registered
// by the time its Connect returns (it has read the server info).
package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
)

func main() {
	url := os.Args[1]
	logf := func(f string, a ...any) {}
	nm := netmon.NewStatic()
	a, err := derphttp.NewClient(key.NewNode(), url, logf, nm)
	if err != nil {
		log.Fatal(err)
	}
	bk := key.NewNode()
	b, err := derphttp.NewClient(bk, url, logf, nm)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx); err != nil {
		log.Fatal("connect a: ", err)
	}
	if err := b.Connect(ctx); err != nil {
		log.Fatal("connect b: ", err)
	}
	sizes := []int{1200, 30000, 40000, 65536, 1200}
	got := make(chan []byte, len(sizes))
	go func() {
		for {
			m, err := b.Recv()
			if err != nil {
				log.Fatal("recv: ", err)
			}
			if p, ok := m.(derp.ReceivedPacket); ok {
				got <- append([]byte(nil), p.Data...)
			}
		}
	}()
	for i, n := range sizes {
		if err := a.Send(bk.Public(), bytes.Repeat([]byte{byte(i + 1)}, n)); err != nil {
			log.Fatal("send: ", err)
		}
	}
	for i, n := range sizes {
		select {
		case p := <-got:
			if !bytes.Equal(p, bytes.Repeat([]byte{byte(i + 1)}, n)) {
				log.Fatalf("packet %d: got %d bytes, want %d of %d", i, len(p), n, i+1)
			}
		case <-time.After(5 * time.Second):
			log.Fatalf("packet %d (%d bytes) never arrived", i, n)
		}
	}
	fmt.Println("ok: every packet whole, sizes", sizes)
}
