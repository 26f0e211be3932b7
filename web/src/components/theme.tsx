"use client";

import { useEffect, useId, useState } from "react";
import { THEME_KEY } from "./theme-key";
type Theme = "system" | "light" | "dark";

function apply(theme: Theme) {
  const root = document.documentElement;
  if (theme === "system") delete root.dataset.theme;
  else root.dataset.theme = theme;
}

/** Light / dark / system, remembered in localStorage and applied as <html data-theme>. */
export function ThemeSwitch() {
  const id = useId();
  const [theme, setTheme] = useState<Theme>("system");

  useEffect(() => {
    let stored: string | null = null;
    try {
      stored = localStorage.getItem(THEME_KEY);
    } catch {
      stored = null;
    }
    if (stored === "light" || stored === "dark") setTheme(stored);
  }, []);

  function change(next: Theme) {
    setTheme(next);
    apply(next);
    try {
      if (next === "system") localStorage.removeItem(THEME_KEY);
      else localStorage.setItem(THEME_KEY, next);
    } catch {
      // Storage may be unavailable (private mode); the choice lasts for this page.
    }
  }

  return (
    <div className="theme-switch">
      <label htmlFor={id} className="visually-hidden">
        Theme
      </label>
      <select id={id} value={theme} onChange={(e) => change(e.target.value as Theme)} className="select-sm">
        <option value="system">System theme</option>
        <option value="light">Light</option>
        <option value="dark">Dark</option>
      </select>
    </div>
  );
}
