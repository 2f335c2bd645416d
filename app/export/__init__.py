"""Export: a dataset's (filtered) items and their current or original annotations, written in the dataset's own
format or a common one (docs/export.md). `service.plan_export` checks a request once (format, kind, selection);
`service.write_export` writes the files into a folder through the atomic writer; `jobs` runs it as a job."""
