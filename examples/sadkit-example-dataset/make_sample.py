"""Writes src/sadkit_example_dataset/data/sensors.csv, the sample file the example dataset ships (seeded: the
same file every time). Your own dataset reads your own file instead; this one only needs a file to read."""

from pathlib import Path

import numpy as np

N_ROWS, FAULT_SHARE = 1200, 0.06


def main() -> None:
    rng = np.random.default_rng(19)
    fault = (rng.random(N_ROWS) < FAULT_SHARE).astype(int)
    current = rng.normal(10.0, 1.0, N_ROWS)
    temperature = 55.0 + 0.8 * current + rng.normal(0.0, 2.0, N_ROWS) + 9.0 * fault
    vibration = 0.2 * current + rng.normal(0.0, 0.3, N_ROWS) + fault * rng.normal(1.5, 0.5, N_ROWS)
    pressure = rng.normal(3.0, 0.3, N_ROWS) - 0.6 * fault
    rows = np.column_stack([np.arange(1000, 1000 + N_ROWS), temperature, vibration, pressure, current, fault])
    out = Path(__file__).parent / "src" / "sadkit_example_dataset" / "data" / "sensors.csv"
    np.savetxt(
        out,
        rows,
        delimiter=",",
        fmt=["%d", "%.3f", "%.3f", "%.3f", "%.3f", "%d"],
        header="reading_id,temperature,vibration,pressure,current,fault",
        comments="",
    )


if __name__ == "__main__":
    main()
