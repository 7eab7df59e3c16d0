"""biomedgpt.agent: the LangGraph assistant (graph, planner, back ends, sessions, Jupyter)."""
