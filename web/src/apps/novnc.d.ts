// noVNC ships JavaScript without types; vnc-app.tsx states the part it uses.
declare module "@novnc/novnc";
