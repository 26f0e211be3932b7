import { THEME_KEY } from "./theme-key";

// Runs before first paint (it is inline in <head>), so a stored light/dark
// choice applies without a flash of the other theme.
const SCRIPT = `try{var t=localStorage.getItem(${JSON.stringify(THEME_KEY)});if(t==="light"||t==="dark")document.documentElement.dataset.theme=t}catch(e){}`;

export function ThemeScript() {
  return <script dangerouslySetInnerHTML={{ __html: SCRIPT }} />;
}
