-- CreateTable
CREATE TABLE "Replica" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "seenAt" DATETIME NOT NULL
);

-- CreateTable
CREATE TABLE "NodeStream" (
    "nodeId" TEXT NOT NULL,
    "replicaId" TEXT NOT NULL,

    PRIMARY KEY ("nodeId", "replicaId"),
    CONSTRAINT "NodeStream_nodeId_fkey" FOREIGN KEY ("nodeId") REFERENCES "Node" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "NodeStream_replicaId_fkey" FOREIGN KEY ("replicaId") REFERENCES "Replica" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE INDEX "NodeStream_replicaId_idx" ON "NodeStream"("replicaId");
