CREATE TABLE "retail"."churn_training" AS
WITH "spine" AS (
  SELECT
    "customer_id",
    "plan",
    "monthly_fee" * 12 AS "annual_fee",
    CASE
      WHEN "churned_at" IS NOT NULL THEN
        1
      ELSE
        0
    END AS "label"
  FROM
    "customers"
), "src_events" AS (
  SELECT
    "customer_id",
    COUNT(*) AS "n_events",
    COUNT(CASE WHEN "event_type" = 'purchase' THEN 1 END) AS "n_purchases",
    SUM("amount") AS "event_spend",
    AVG("session_seconds") AS "avg_session_seconds",
    MAX("event_ts") AS "last_event_at"
  FROM
    "events"
  GROUP BY
    "customer_id"
), "src_orders" AS (
  SELECT
    "customer_id",
    COUNT(*) AS "n_orders",
    SUM("amount") AS "order_value",
    SUM(CASE WHEN "status" = 'returned' THEN 1 ELSE 0 END) * 1.0 / NULLIF(COUNT(*), 0) AS "returned_share"
  FROM
    "orders"
  GROUP BY
    "customer_id"
), "src_support_tickets" AS (
  SELECT
    "customer_id",
    COUNT(*) AS "n_tickets",
    COUNT(CASE WHEN "priority" = 'high' THEN 1 END) AS "n_high_priority",
    AVG("satisfaction") AS "avg_satisfaction"
  FROM
    "support_tickets"
  GROUP BY
    "customer_id"
)
SELECT
  "spine"."customer_id",
  "spine"."plan",
  "spine"."annual_fee",
  CASE
    WHEN "src_events"."customer_id" IS NULL THEN
      0
    ELSE
      "src_events"."n_events"
  END AS "n_events",
  CASE
    WHEN "src_events"."customer_id" IS NULL THEN
      0
    ELSE
      "src_events"."n_purchases"
  END AS "n_purchases",
  "src_events"."event_spend",
  "src_events"."avg_session_seconds",
  "src_events"."last_event_at",
  CASE
    WHEN "src_orders"."customer_id" IS NULL THEN
      0
    ELSE
      "src_orders"."n_orders"
  END AS "n_orders",
  "src_orders"."order_value",
  "src_orders"."returned_share",
  CASE
    WHEN "src_support_tickets"."customer_id" IS NULL THEN
      0
    ELSE
      "src_support_tickets"."n_tickets"
  END AS "n_tickets",
  CASE
    WHEN "src_support_tickets"."customer_id" IS NULL THEN
      0
    ELSE
      "src_support_tickets"."n_high_priority"
  END AS "n_high_priority",
  "src_support_tickets"."avg_satisfaction",
  "spine"."label"
FROM
  "spine"
  LEFT JOIN "src_events" ON "spine"."customer_id" = "src_events"."customer_id"
  LEFT JOIN "src_orders" ON "spine"."customer_id" = "src_orders"."customer_id"
  LEFT JOIN "src_support_tickets" ON "spine"."customer_id" = "src_support_tickets"."customer_id";
