// Registers tsx for the trellis CLI. `node --import tsx` would resolve tsx
// from the working directory, which fails outside the repository (a systemd
// unit runs in /); imported from here it resolves from this checkout.
import "tsx";
