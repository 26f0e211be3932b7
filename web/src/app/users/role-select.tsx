"use client";

import { useState } from "react";
import { UserInfo, type Role } from "@trellis/proto/admin";
import { useMutation } from "@/components/use-mutation";

export function RoleSelect({ userId, email, role }: { userId: string; email: string; role: Role }) {
  const mut = useMutation();
  const [value, setValue] = useState<Role>(role);
  return (
    <span className="nowrap">
      <label className="visually-hidden" htmlFor={`role-${userId}`}>
        Role of {email}
      </label>
      <select
        id={`role-${userId}`}
        className="select-sm"
        value={value}
        disabled={mut.busy}
        data-testid={`role-${email}`}
        onChange={async (e) => {
          const next = e.target.value as Role;
          const prev = value;
          setValue(next);
          const res = await mut.run("PATCH", `/api/v1/users/${encodeURIComponent(userId)}`, UserInfo, {
            role: next,
          });
          if (!res.ok) setValue(prev);
        }}
      >
        <option value="admin">admin</option>
        <option value="member">member</option>
        <option value="auditor">auditor</option>
      </select>
      {mut.error ? (
        <span className="inline-error" role="alert">
          {mut.error}
        </span>
      ) : null}
    </span>
  );
}
