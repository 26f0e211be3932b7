export function Brand({ href = "/" }: { href?: string }) {
  return (
    <a className="brand" href={href}>
      <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
        <path
          d="M4 4h16M4 12h16M4 20h16M4 4v16M12 4v16M20 4v16"
          stroke="currentColor"
          strokeWidth="2"
          fill="none"
          strokeLinecap="round"
        />
      </svg>
      Trellis
    </a>
  );
}
