import { headers } from "next/headers";
import { nonceOf } from "@/lib/security-headers";
import { THEME_KEY } from "./theme-key";

// Runs before first paint (it is inline in <head>), so a stored light/dark
// choice applies without a flash of the other theme. It carries the
// response's nonce: the console's script policy runs no other inline script.
const SCRIPT = `try{var t=localStorage.getItem(${JSON.stringify(THEME_KEY)});if(t==="light"||t==="dark")document.documentElement.dataset.theme=t}catch(e){}`;

export async function ThemeScript() {
  const nonce = nonceOf((await headers()).get("content-security-policy"));
  return <script nonce={nonce} dangerouslySetInnerHTML={{ __html: SCRIPT }} />;
}
