-- AlterTable
ALTER TABLE "Node" ADD COLUMN     "gatewayId" TEXT,
ADD COLUMN     "wireguardOnly" BOOLEAN NOT NULL DEFAULT false;

-- CreateIndex
CREATE INDEX "Node_gatewayId_idx" ON "Node"("gatewayId");
