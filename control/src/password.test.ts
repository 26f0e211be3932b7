import { describe, expect, it } from "vitest";
import { hashPassword, verifyPassword } from "./password";

describe("password hashing", () => {
  it("verifies the right password and refuses a wrong one", async () => {
    const hash = await hashPassword("correct horse battery staple");
    expect(hash).toMatch(/^scrypt\$32768\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
    expect(await verifyPassword("correct horse battery staple", hash)).toBe(true);
    expect(await verifyPassword("correct horse battery stapler", hash)).toBe(false);
  });

  it("salts: the same password hashes differently each time", async () => {
    expect(await hashPassword("same password!")).not.toBe(await hashPassword("same password!"));
  });

  it.each([
    "",
    "scrypt$1$2$3",
    "bcrypt$a$b$c$d$e",
    "scrypt$99999999$8$1$AAAA$BBBB",
    "scrypt$32768$8$1$AAAA$short",
  ])("treats malformed hash %j as a mismatch, not a crash", async (stored) => {
    expect(await verifyPassword("anything at all", stored)).toBe(false);
  });
});
