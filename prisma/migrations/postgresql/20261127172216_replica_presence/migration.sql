-- CreateTable
CREATE TABLE "Replica" (
    "id" TEXT NOT NULL,
    "seenAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Replica_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "NodeStream" (
    "nodeId" TEXT NOT NULL,
    "replicaId" TEXT NOT NULL,

    CONSTRAINT "NodeStream_pkey" PRIMARY KEY ("nodeId","replicaId")
);

-- CreateIndex
CREATE INDEX "NodeStream_replicaId_idx" ON "NodeStream"("replicaId");

-- AddForeignKey
ALTER TABLE "NodeStream" ADD CONSTRAINT "NodeStream_nodeId_fkey" FOREIGN KEY ("nodeId") REFERENCES "Node"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "NodeStream" ADD CONSTRAINT "NodeStream_replicaId_fkey" FOREIGN KEY ("replicaId") REFERENCES "Replica"("id") ON DELETE CASCADE ON UPDATE CASCADE;
