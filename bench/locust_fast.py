from locust import FastHttpUser, task


class Fast(FastHttpUser):
    @task
    def get(self):
        self.client.get("/100b.txt")
