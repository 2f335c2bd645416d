"""VerSe: spine CT volumes with vertebra masks and centroids (BIDS-like and flat VerSe\x2719 layouts)."""
