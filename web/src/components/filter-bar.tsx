import Form from "next/form";
import Link from "next/link";
import type { ReactNode } from "react";

/**
 * The filters above a list: a GET form to `action` (so the filters live in
 * the URL), Filter, and Clear while any filter is set.
 */
export function FilterBar({
  action,
  clearHref,
  filtered,
  children,
}: {
  action: string;
  /** Where Clear goes: the list without filters. */
  clearHref: string;
  filtered: boolean;
  children: ReactNode;
}) {
  return (
    <Form action={action} className="toolbar" role="search">
      {children}
      <button type="submit" className="btn btn-secondary">
        Filter
      </button>
      {filtered ? (
        <Link href={clearHref} className="btn btn-ghost">
          Clear
        </Link>
      ) : null}
    </Form>
  );
}

/** A text filter with a label for screen readers (the placeholder says what to type). */
export function TextFilter({
  id,
  name,
  label,
  value,
  placeholder,
  search = false,
}: {
  id: string;
  name: string;
  label: string;
  value: string | undefined;
  placeholder: string;
  /** A search box: it takes the toolbar's spare width. */
  search?: boolean;
}) {
  return (
    <>
      <label className="visually-hidden" htmlFor={id}>
        {label}
      </label>
      <input
        id={id}
        type={search ? "search" : undefined}
        name={name}
        defaultValue={value ?? ""}
        placeholder={placeholder}
      />
    </>
  );
}

/** A choice filter; the first option (value "") means no filter. */
export function SelectFilter({
  id,
  name,
  label,
  value,
  options,
}: {
  id: string;
  name: string;
  label: string;
  value: string | undefined;
  options: readonly { value: string; label: string }[];
}) {
  return (
    <>
      <label className="visually-hidden" htmlFor={id}>
        {label}
      </label>
      <select id={id} name={name} defaultValue={value ?? ""}>
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    </>
  );
}
