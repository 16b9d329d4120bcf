from locust import HttpUser, task


class Http(HttpUser):
    @task
    def get(self):
        self.client.get("/100b.txt")
