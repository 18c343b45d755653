"""One router per resource: tasks, competitors, submissions, leaderboard, admin, pages."""
