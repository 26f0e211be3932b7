"use client";

/** A page failed to render: say so calmly and offer a retry. Details go to the server log. */
export default function PageError({
  error,
  reset,
}: {
  error: Error & { digest?: string };
  reset: () => void;
}) {
  return (
    <div className="panel" role="alert" style={{ maxWidth: "40rem" }}>
      <h1>Something went wrong</h1>
      <p>This page could not be loaded. Try again; if it keeps failing, the server log has the details.</p>
      {error.digest ? <p className="muted small">Reference: {error.digest}</p> : null}
      <div className="form-actions">
        <button type="button" className="btn btn-primary" onClick={reset}>
          Try again
        </button>
      </div>
    </div>
  );
}
