/** localStorage key of the console's theme choice ("light" | "dark"; absent: follow the system). */
export const THEME_KEY = "trellis-theme";
