import { createServer } from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { RTCPeerConnection } from "node-datachannel/polyfill";
import { launchChromium } from "../src/browser";

const srv = createServer((_q, r) => { r.setHeader("content-type", "text/html"); r.end("<html><body>x</body></html>"); });
srv.listen(0, "127.0.0.1"); await once(srv, "listening");
const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/`;
const ch = await launchChromium({ extraArgs: ["--disable-features=WebRtcHideLocalIpsWithMdns"] });
const ctx = await ch.browser.newContext();
await ctx.addInitScript("globalThis.__name = (f) => f;");
const page = await ctx.newPage();
let answerer: ((o: string) => Promise<string>) | null = null;
await page.exposeFunction("benchAnswer", (o: string) => answerer!(o));
await page.goto(url);
const BYTES = 8e6;
for (const size of (process.argv[2] ?? "1100,1190,1312,2400,8000,16000").split(",").map(Number)) {
  for (const reliable of (process.argv[3] ?? 'u').split(',').map((x) => x === 'r')) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  let got = 0, first = 0, last = 0;
  pc.ondatachannel = (e) => { const dc = e.channel; dc.binaryType = "arraybuffer";
    dc.onmessage = (m: MessageEvent) => { const now = performance.now(); if (!first) first = now; last = now; got += (m.data as ArrayBuffer).byteLength; }; };
  const gathered = (p: RTCPeerConnection) => p.iceGatheringState === "complete" ? Promise.resolve() : new Promise<void>((res) => { p.onicegatheringstatechange = () => p.iceGatheringState === "complete" && res(); });
  answerer = async (offer) => { await pc.setRemoteDescription({ type: "offer", sdp: offer }); await pc.setLocalDescription(await pc.createAnswer()); await gathered(pc); return pc.localDescription!.sdp; };
  const sent = await page.evaluate(async ({ bytes, size, reliable }) => {
    const pc = new RTCPeerConnection();
    const dc = pc.createDataChannel("raw", reliable ? {} : { ordered: false, maxRetransmits: 0 });
    dc.binaryType = "arraybuffer";
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise<void>((r) => { if (pc.iceGatheringState === "complete") r(); pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); });
    const answer = await (window as any).benchAnswer(pc.localDescription!.sdp);
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    await new Promise<void>((r) => (dc.onopen = () => r()));
    const chunk = new Uint8Array(size).fill(7);
    dc.bufferedAmountLowThreshold = 256 << 10;
    const t0 = performance.now();
    let sent = 0;
    for (; sent < bytes; sent += size) {
      if (dc.bufferedAmount > 1 << 20) await new Promise<void>((r) => { dc.onbufferedamountlow = () => r(); setTimeout(r, 5); });
      dc.send(chunk);
    }
    await new Promise((r) => setTimeout(r, 1000));
    pc.close();
    return { sent, ms: performance.now() - t0 };
  }, { bytes: BYTES, size, reliable });
  const secs = (last - first) / 1000;
  console.log(`size ${size} ${reliable ? "reliable  " : "unreliable"}: delivered ${(got / 1e6).toFixed(1)}/${(sent.sent / 1e6).toFixed(1)} MB, ${(got / secs / 1e6).toFixed(1)} MB/s`);
  pc.close();
  }
}
await ch.close(); srv.close(); process.exit(0);
