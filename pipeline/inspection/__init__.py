"""Reading a finished run: funnel, stage profiles, trace, export, the HTML report; never writes into the run."""
