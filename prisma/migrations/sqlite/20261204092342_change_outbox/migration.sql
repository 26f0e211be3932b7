-- CreateTable
CREATE TABLE "Change" (
    "seq" BIGINT NOT NULL PRIMARY KEY,
    "at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "event" TEXT NOT NULL
);

-- CreateIndex
CREATE INDEX "Change_at_idx" ON "Change"("at");
