-- pit_bench.json written by hand for DuckDB, as a DuckDB user would: each source
-- aggregated straight against the spine's (customer, cutoff) rows with conditional
-- aggregates, and the as-of value with DuckDB's ASOF JOIN (which picks an arbitrary row
-- among rows tied on changed_at). Same columns and values as the compiled recipe, except
-- current_plan where plan changes tie.
WITH ev AS (
  SELECT c.customer_id, c.cutoff_time,
    COUNT(*) FILTER (WHERE e.event_ts >= c.cutoff_time - INTERVAL 7 DAY) AS n_events_7d,
    COUNT(*) FILTER (WHERE e.event_ts >= c.cutoff_time - INTERVAL 30 DAY) AS n_events_30d,
    COUNT(*) AS n_events_90d,
    COUNT(*) FILTER (WHERE e.event_ts >= c.cutoff_time - INTERVAL 30 DAY AND e.event_type = 'purchase') AS purchases_30d,
    SUM(e.amount) AS event_spend_90d,
    COUNT(DISTINCT e.event_type) AS event_types_90d,
    AVG(e.session_seconds) FILTER (WHERE e.event_ts >= c.cutoff_time - INTERVAL 30 DAY) AS avg_session_30d
  FROM churn_cutoffs c JOIN events e
    ON e.customer_id = c.customer_id
   AND e.event_ts < c.cutoff_time AND e.event_ts >= c.cutoff_time - INTERVAL 90 DAY
  GROUP BY ALL
), od AS (
  SELECT c.customer_id, c.cutoff_time,
    COUNT(*) FILTER (WHERE o.order_date >= c.cutoff_time - INTERVAL 30 DAY) AS orders_30d,
    SUM(o.amount) FILTER (WHERE o.order_date >= c.cutoff_time - INTERVAL 90 DAY) AS order_total_90d,
    AVG(o.amount) FILTER (WHERE o.order_date >= c.cutoff_time - INTERVAL 90 DAY) AS avg_order_90d,
    MAX(o.order_date) AS last_order_date
  FROM churn_cutoffs c JOIN orders o
    ON o.customer_id = c.customer_id AND o.order_date < c.cutoff_time
  GROUP BY ALL
), st AS (
  SELECT c.customer_id, c.cutoff_time,
    COUNT(*) AS tickets_90d, AVG(t.satisfaction) AS avg_satisfaction_90d
  FROM churn_cutoffs c JOIN support_tickets t
    ON t.customer_id = c.customer_id
   AND t.opened_at < c.cutoff_time AND t.opened_at >= c.cutoff_time - INTERVAL 90 DAY
  GROUP BY ALL
)
SELECT c.customer_id, c.cutoff_time,
  COALESCE(ev.n_events_7d, 0) AS n_events_7d,
  COALESCE(ev.n_events_30d, 0) AS n_events_30d,
  COALESCE(ev.n_events_90d, 0) AS n_events_90d,
  COALESCE(ev.purchases_30d, 0) AS purchases_30d,
  ev.event_spend_90d,
  COALESCE(ev.event_types_90d, 0) AS event_types_90d,
  ev.avg_session_30d,
  COALESCE(od.orders_30d, 0) AS orders_30d,
  od.order_total_90d, od.avg_order_90d, od.last_order_date,
  COALESCE(st.tickets_90d, 0) AS tickets_90d,
  st.avg_satisfaction_90d,
  p.to_plan AS current_plan,
  cu.is_business,
  c.churned_30d
FROM churn_cutoffs c
  LEFT JOIN ev USING (customer_id, cutoff_time)
  LEFT JOIN od USING (customer_id, cutoff_time)
  LEFT JOIN st USING (customer_id, cutoff_time)
  LEFT JOIN customers cu ON cu.customer_id = c.customer_id
  ASOF LEFT JOIN plan_changes p ON p.customer_id = c.customer_id AND p.changed_at < c.cutoff_time
